import FerryAMQP
import FerryBroker
import Foundation
import Logging
import Synchronization
import Testing

/// Ferry's one consumer against the real broker: acknowledged after the effect, requeued with a
/// pause when the handler fails for a reason that may pass, dead-lettered with the reason when it
/// never can or keeps failing; nothing is ever left unsettled (before, an event whose database write
/// threw stayed stranded until the connection dropped).
@Suite("One consumer for every queue", .serialized)
struct QueueConsumerTests {
    /// A quorum work queue (it counts deliveries) without a dead-letter exchange, like ferry.events,
    /// and a fanout with a bound queue to set failures aside in.
    struct Queues {
        let work = Broker.uniqueName("consumed")
        let aside = Broker.uniqueName("aside")
        let exchange = Broker.uniqueName("aside-exchange")

        func declare(on connection: AMQPConnection) async throws {
            try await connection.declareQueue(work, arguments: ["x-queue-type": "quorum"])
            try await connection.declareExchange(exchange, type: .fanout)
            try await connection.declareQueue(aside, arguments: ["x-queue-type": "quorum"])
            try await connection.bindQueue(aside, to: exchange)
        }

        func remove(on connection: AMQPConnection) async throws {
            try await connection.deleteQueue(work)
            try await connection.deleteQueue(aside)
            try await connection.deleteExchange(exchange)
        }
    }

    /// Runs `consumer` until `done` says so (at most 30 s), then stops it.
    static func consume(_ consumer: QueueConsumer, until done: @escaping @Sendable () async -> Bool, _ handle: @escaping @Sendable (AMQPDelivery, AMQPConnection) async throws -> Void) async throws {
        let task = Task { await consumer.run(handle) }
        let deadline = Date().addingTimeInterval(30)
        while await !done(), Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        task.cancel()
        await task.value
        #expect(await done(), "the consumer did not get there within 30 s")
    }

    static func link(_ name: String) -> BrokerLink {
        BrokerLink(url: Broker.url, options: AMQPConnectionOptions(name: name), logger: Broker.logger)
    }

    @Test func aFailingEffectIsRetriedUntilItWorksAndThenAcknowledgedOnce() async throws {
        let connection = try await Broker.connect()
        let queues = Queues()
        try await queues.declare(on: connection)
        try await connection.publish(Array("event".utf8), routingKey: queues.work)
        let attempts = Mutex(0), applied = Mutex(0)
        let consumer = QueueConsumer(link: Self.link("ferry-tests-retry"), queue: queues.work, prefetch: 4, maxAttempts: 10, deadLettering: .publish(exchange: queues.exchange), logger: Broker.logger)
        try await Self.consume(consumer, until: { applied.withLock { $0 } == 1 }) { _, _ in
            let attempt = attempts.withLock { $0 += 1; return $0 }
            if attempt < 3 { throw DeliveryFailure.transient("the database is away", pause: .milliseconds(100)) }
            applied.withLock { $0 += 1 }
        }
        #expect(attempts.withLock { $0 } == 3 && applied.withLock { $0 } == 1)
        try await Task.sleep(for: .milliseconds(300))
        let state = try await connection.inspectQueue(queues.work)
        #expect(state.messageCount == 0, "the applied message is still in the queue")
        #expect(try await connection.inspectQueue(queues.aside).messageCount == 0, "a message that worked was set aside")
        try await queues.remove(on: connection)
        try await connection.close()
    }

    @Test func aMessageThatNeverWorksIsSetAsideWithItsReason() async throws {
        let connection = try await Broker.connect()
        let queues = Queues()
        try await queues.declare(on: connection)
        try await connection.publish(Array("unreadable".utf8), routingKey: queues.work)
        try await connection.publish(Array("keeps failing".utf8), routingKey: queues.work)
        let consumer = QueueConsumer(link: Self.link("ferry-tests-aside"), queue: queues.work, prefetch: 4, maxAttempts: 3, deadLettering: .publish(exchange: queues.exchange), logger: Broker.logger)
        try await Self.consume(consumer, until: { (try? await connection.inspectQueue(queues.aside).messageCount) == 2 }) { delivery, _ in
            if delivery.body == Array("unreadable".utf8) { throw DeliveryFailure.permanent("not a job event") }
            throw DeliveryFailure.transient("the database is away", pause: .milliseconds(50))
        }
        let aside = try await connection.consume(queue: queues.aside, prefetch: 2)
        var reasons: [String: String] = [:]
        for try await delivery in aside {
            reasons[String(decoding: delivery.body, as: UTF8.self)] = delivery.properties.headers["x-ferry-reason"]?.stringValue
            try await connection.ack(delivery)
            if reasons.count == 2 { break }
        }
        #expect(reasons["unreadable"] == "not a job event")
        #expect(reasons["keeps failing"]?.contains("failed 3 times") == true, "\(reasons)")
        #expect(try await connection.inspectQueue(queues.work).messageCount == 0)
        try await queues.remove(on: connection)
        try await connection.close()
    }
}

