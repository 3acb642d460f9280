import FerryService

/// Ferry's web pages and the /api proxy to the Backend.
@main struct FrontendMain {
    static func main() async {
        await runFerryService { try await buildFrontend(reader: .ferry()) }
    }
}
