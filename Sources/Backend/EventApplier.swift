import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryService
import Logging
import ServiceLifecycle

/// Consumes `ferry.events` and applies each to the job, acknowledging only after the database write.
/// Applying is idempotent: an event that would not move the job forward changes nothing.
struct EventApplier: Service {
    let link: BrokerLink
    let store: JobStore
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await consume() }
    }

    private func consume() async {
        await link.keepRunning("consuming \(Topology.eventsQueue)") { connection in
            for try await delivery in try await connection.consume(queue: Topology.eventsQueue, prefetch: 64) {
                guard let event = try? FerryJSON.decode(JobEvent.self, from: delivery.body) else {
                    logger.error("unreadable job event; dead-lettering it")
                    try await connection.reject(delivery, requeue: false)
                    continue
                }
                let moved = try await store.move(
                    event.jobID, to: event.status, at: event.at, exitCode: event.exitCode, reason: event.reason, resultBytes: event.resultBytes, unit: event.unit
                )
                if let moved { BackendMetrics.jobMoved(to: event.status, times: moved) }
                logger.debug("job event", metadata: [LogKeys.jobID: "\(event.jobID)", "status": "\(event.status.rawValue)", "applied": "\(moved != nil)"])
                try await connection.ack(delivery)
            }
        }
    }
}

/// The Producer over HTTP (libcurl).
struct ProducerQueue: JobQueue {
    let producerURL: String
    let token: InternalToken
    let http: HTTPClient

    func enqueue(_ message: JobMessage) async throws {
        try await http.json("POST", producerURL + "/internal/v1/jobs", body: message, headers: [token.header], timeout: .seconds(30))
    }
}

/// Cancel requests and the queue's depth, straight from the broker.
struct BrokerLinkControl: BrokerControl {
    let link: BrokerLink

    func cancel(_ request: CancelRequest) async throws {
        // A fanout with no Consumer bound has nobody to tell; the cancel marker still stops the job.
        try await link.connection().publish(
            try FerryJSON.encode(request), exchange: Topology.controlExchange, routingKey: "",
            properties: AMQPProperties(contentType: "application/json"), mandatory: false
        )
    }

    func jobsWaiting() async throws -> (messages: Int, consumers: Int) {
        let state = try await link.connection().inspectQueue(Topology.jobsQueue)
        return (state.messageCount, state.consumerCount)
    }
}
