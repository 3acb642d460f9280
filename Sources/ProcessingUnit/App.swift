import FerryService

/// Runs jobs: extracts the bundle, prepares Python, runs code.py, zips output/.
@main struct ProcessingUnitMain {
    static func main() async {
        await runFerryService { try await buildProcessingUnit(reader: .ferry()) }
    }
}
