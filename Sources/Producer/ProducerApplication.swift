import Configuration
import FerryAMQP
import FerryBroker
import FerryContracts
import FerryService
import Hummingbird
import Logging

/// The producer service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultProducerPort = 8082

/// Builds the producer service from configuration.
func buildProducer(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "producer", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultProducerPort)
    let link = BrokerLink(url: try AMQPURL(reader: reader), options: try AMQPConnectionOptions(reader: reader, name: "ferry-producer"), logger: logger)
    let publisher = BrokerJobPublisher(link: link)
    let router = buildProducerRouter(publisher: publisher, token: try InternalToken(reader: reader), maxima: try JobLimitMaxima(reader: reader), logger: logger)
    return buildServiceApplication(service: "producer", router: router, http: http, logger: logger)
}

/// Publishes job messages; the broker-backed one waits for the publisher confirm.
protocol JobPublisher: Sendable {
    func publish(_ message: JobMessage) async throws
    /// Throws when the broker cannot be reached (the health check).
    func ready() async throws
}

struct BrokerJobPublisher: JobPublisher {
    let link: BrokerLink

    func publish(_ message: JobMessage) async throws {
        let connection = try await link.connection()
        try await connection.publish(
            try FerryJSON.encode(message), routingKey: Topology.jobsQueue,
            properties: AMQPProperties(contentType: "application/json", messageID: message.jobID, timestamp: message.submittedAt)
        )
    }

    func ready() async throws {
        _ = try await link.connection().inspectQueue(Topology.jobsQueue)
    }
}

/// The producer service's routes; its dependencies are parameters so that tests can pass fakes.
func buildProducerRouter(publisher: any JobPublisher, token: InternalToken, maxima: JobLimitMaxima, logger: Logger) -> Router<FerryRequestContext> {
    let router = Router(context: FerryRequestContext.self)
    router.addMetricsRoute()
    router.addHealthRoute(service: "producer", checks: [.passes("broker") { try await publisher.ready() }])
    router.add(middleware: InternalAuthMiddleware(token: token))
    /// Answers 202 only once the broker confirmed the message; 503 when it cannot be published.
    /// Only the Backend (with the internal token) may queue, and only a message whose every field checks out.
    router.post("/internal/v1/jobs") { request, context -> Response in
        let message = try await request.decode(as: JobMessage.self, context: context)
        do {
            try message.check(within: maxima)
        } catch {
            throw APIError(.unprocessableContent, code: "job.invalid_message", message: "The job message is refused: \(error).")
        }
        do {
            try await publisher.publish(message)
        } catch {
            logger.warning("cannot publish job", metadata: [LogKeys.jobID: "\(message.jobID)", "error": "\(error)"])
            throw APIError(.serviceUnavailable, code: "broker.unavailable", message: "The job could not be queued: \(error). It stays submitted and is queued again later.")
        }
        return Response(status: .accepted)
    }
    return router
}
