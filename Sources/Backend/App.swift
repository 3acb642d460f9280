import FerryService

/// Ferry's REST API: users, jobs, uploads, and the consumer of job events.
@main struct BackendMain {
    static func main() async {
        await runFerryService { try await buildBackend(reader: .ferry()) }
    }
}
