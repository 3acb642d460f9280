import FerryService

/// Publishes job messages to RabbitMQ and answers only once the broker confirmed.
@main struct ProducerMain {
    static func main() async {
        await runFerryService { try buildProducer(reader: .ferry()) }
    }
}
