import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import Logging
import ServiceLifecycle

/// Consumes `ferry.events` and applies each to the job, acknowledging only after the database write
/// (`QueueConsumer`): a write that fails is retried with a growing pause until the database answers,
/// and an unreadable event, or one that kept failing, is set aside in `ferry.dead-letters` with the
/// reason. Applying is idempotent: an event that would not move the job forward changes nothing.
struct EventApplier: Service {
    let link: BrokerLink
    let store: JobStore
    /// Lets a sweep's next runs go when one of its runs ended.
    var turns: SweepTurns?
    let logger: Logger

    func run() async throws {
        let consumer = QueueConsumer(
            link: link, queue: Topology.eventsQueue, prefetch: 64, maxAttempts: 20,
            deadLettering: .publish(exchange: Topology.deadLetterExchange), logger: logger
        )
        await cancelWhenGracefulShutdown { await consumer.run { delivery, _ in try await apply(delivery) } }
    }

    func apply(_ delivery: AMQPDelivery) async throws {
        guard let event = try? FerryJSON.decode(JobEvent.self, from: delivery.body) else {
            throw DeliveryFailure.permanent("unreadable job event")
        }
        let moved: JobStore.Times?
        do {
            moved = try await store.move(
                event.jobID, to: event.status, at: event.at, exitCode: event.exitCode, reason: event.reason, resultBytes: event.resultBytes, unit: event.unit
            )
        } catch {
            throw DeliveryFailure.transient("the database did not take the event: \(error)")
        }
        if let moved {
            BackendMetrics.jobMoved(to: event.status, times: moved)
            // A run of a sweep that ended lets the sweep's next runs go.
            if event.status.isFinal, let sweep = moved.sweepID { await turns?.release(sweep: sweep) }
        } else {
            do {
                try await store.restate(event.jobID, status: event.status, reason: event.reason)
            } catch {
                throw DeliveryFailure.transient("the database did not take the event: \(error)")
            }
        }
        logger.debug("job event", metadata: [LogKeys.jobID: "\(event.jobID)", "status": "\(event.status.rawValue)", "applied": "\(moved != nil)"])
    }
}

extension JobQueue {
    /// Hands each message to the Producer and marks its job `queued`, in order, stopping at the first
    /// the Producer does not take: that one and the rest stay `submitted` for the outbox's next pass.
    /// Answers how many were queued, and what stopped it.
    func handOver(_ messages: [JobMessage], store: JobStore) async -> (queued: Int, failure: (any Error)?) {
        var queued = 0
        for message in messages {
            do {
                try await enqueue(message)
                if try await store.advance(message.jobID, to: .queued, at: Date(), from: [.submitted]) { queued += 1 }
            } catch {
                return (queued, error)
            }
        }
        return (queued, nil)
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
