import FerryService

/// Takes jobs off ferry.jobs, hands them to its ProcessingUnit and relays their events.
@main struct ConsumerMain {
    static func main() async {
        await runFerryService { try buildConsumer(reader: .ferry()) }
    }
}
