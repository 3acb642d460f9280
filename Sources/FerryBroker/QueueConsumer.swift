import FerryAMQP
import Foundation
import Logging

/// Why a handler did not apply a delivery.
public enum DeliveryFailure: Error, CustomStringConvertible {
    /// It can never be applied (unreadable, invalid): dead-letter it now.
    case permanent(String)
    /// It may be applied later (the database, the unit, the broker failed): requeue it after a pause.
    case transient(String, pause: Duration? = nil)

    public var description: String {
        switch self {
        case .permanent(let reason), .transient(let reason, _): reason
        }
    }
}

/// The one way Ferry consumes a queue: every delivery is acknowledged only after its handler's
/// effect is durable; a handler that fails for a reason that may pass has its delivery requeued after
/// a pause that grows with each attempt (0.5 s doubling to 30 s); a delivery that can never be applied,
/// or that failed `maxAttempts` times, is dead-lettered with the reason logged: rejected into the
/// queue's own dead-letter exchange where it has one, else published to `deadLetterExchange` with
/// the reason in its `x-ferry-reason` header and then acknowledged. Nothing is left unsettled.
/// Connections are the link's: lost ones are reopened and consumption resumes.
public struct QueueConsumer: Sendable {
    public enum DeadLettering: Sendable {
        /// The queue has a dead-letter exchange: reject without requeue.
        case queueArguments
        /// Publish a copy to this exchange (with the reason), then acknowledge.
        case publish(exchange: String)
    }

    public let link: BrokerLink
    /// The queue consumed; with `declare`, a name for logs while the real one comes from it.
    public let queue: String
    /// Declares the queue on each new connection and returns its name (an exclusive queue of this
    /// consumer's own, bound to a fanout); nil consumes `queue` as it is.
    public var declare: (@Sendable (AMQPConnection) async throws -> String)?
    public let prefetch: UInt16
    /// Failed attempts before a delivery is dead-lettered; nil leaves it to the queue's delivery limit.
    public let maxAttempts: Int?
    public let deadLettering: DeadLettering
    /// Deliveries handled at once (1: one after another, in order).
    public let concurrency: Int
    let logger: Logger

    public init(
        link: BrokerLink, queue: String, prefetch: UInt16, maxAttempts: Int? = 20, deadLettering: DeadLettering,
        concurrency: Int = 1, logger: Logger
    ) {
        self.link = link
        self.queue = queue
        self.prefetch = prefetch
        self.maxAttempts = maxAttempts
        self.deadLettering = deadLettering
        self.concurrency = concurrency
        self.logger = logger
    }

    /// The pause before a delivery that failed `attempts` times goes back to the queue.
    public static func pause(afterAttempts attempts: Int) -> Duration {
        .milliseconds(min(30_000, 500 << min(attempts, 6)))
    }

    /// Consumes until the task is cancelled. `beforeConsuming` runs before each (re)start; `watch`
    /// runs beside the deliveries, and when it returns, consumption stops: this consumer's connection
    /// is closed (so the broker takes back every unsettled delivery at once) and starts over.
    public func run(
        beforeConsuming: @escaping @Sendable () async -> Void = {},
        watch: (@Sendable () async throws -> Void)? = nil,
        _ handle: @escaping @Sendable (AMQPDelivery, AMQPConnection) async throws -> Void
    ) async {
        await link.keepRunning("consuming \(queue)") { connection in
            await beforeConsuming()
            let name = try await declare?(connection) ?? queue
            let deliveries = try await connection.consume(queue: name, prefetch: prefetch)
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    if concurrency > 1 {
                        try await withThrowingDiscardingTaskGroup { handling in
                            for try await delivery in deliveries {
                                handling.addTask { await settle(delivery, on: connection, handle) }
                            }
                        }
                    } else {
                        for try await delivery in deliveries { await settle(delivery, on: connection, handle) }
                    }
                }
                if let watch {
                    group.addTask {
                        try await watch()
                        await link.close()
                        throw ConsumptionPaused(queue: queue)
                    }
                }
            }
        }
    }

    /// Handles one delivery and settles it, whatever happens.
    func settle(_ delivery: AMQPDelivery, on connection: AMQPConnection, _ handle: (AMQPDelivery, AMQPConnection) async throws -> Void) async {
        do {
            try await handle(delivery, connection)
            try await connection.ack(delivery)
        } catch let failure as DeliveryFailure {
            switch failure {
            case .permanent(let reason):
                await deadLetter(delivery, on: connection, reason: reason)
            case .transient(let reason, let pause):
                let attempts = delivery.deliveryCount + 1
                if let maxAttempts, attempts >= maxAttempts {
                    await deadLetter(delivery, on: connection, reason: "failed \(attempts) times; last: \(reason)")
                    return
                }
                logger.warning("delivery failed; it goes back to the queue", metadata: ["amqp.queue": "\(queue)", "attempt": "\(attempts)", "reason": "\(reason)"])
                if !Task.isCancelled { try? await Task.sleep(for: pause ?? Self.pause(afterAttempts: attempts)) }
                try? await connection.nack(delivery, requeue: true)
            }
        } catch {
            // Not the handler's verdict: the settlement itself failed (the connection is lost; the broker
            // delivers the message again), or the task was cancelled.
            if !(error is CancellationError) && !Task.isCancelled {
                logger.warning("delivery could not be settled; the broker delivers it again", metadata: ["amqp.queue": "\(queue)", "error": "\(error)"])
            }
            try? await connection.nack(delivery, requeue: true)
        }
    }

    private func deadLetter(_ delivery: AMQPDelivery, on connection: AMQPConnection, reason: String) async {
        logger.error("dead-lettering a delivery", metadata: ["amqp.queue": "\(queue)", "reason": "\(reason)"])
        switch deadLettering {
        case .queueArguments:
            try? await connection.reject(delivery, requeue: false)
        case .publish(let exchange):
            var properties = delivery.properties
            properties.headers["x-ferry-reason"] = .string(String(reason.prefix(1000)))
            properties.headers["x-ferry-queue"] = .string(queue)
            do {
                try await connection.publish(delivery.body, exchange: exchange, routingKey: delivery.routingKey, properties: properties, mandatory: false)
                try await connection.ack(delivery)
            } catch {
                // Not set aside yet: it comes back, and is dead-lettered then.
                try? await connection.nack(delivery, requeue: true)
            }
        }
    }
}

/// Consumption stopped on purpose (its watcher returned); it starts over.
public struct ConsumptionPaused: Error, CustomStringConvertible {
    public let queue: String
    public var description: String { "consumption of \(queue) paused" }
}
