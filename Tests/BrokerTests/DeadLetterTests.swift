import FerryAMQP
import Foundation
import Testing

@Suite("Dead lettering and delivery limits")
struct DeadLetterTests {
    /// A work queue that dead-letters to a fanout exchange with one bound queue, as ferry.jobs does.
    struct Topology {
        let work = Broker.uniqueName("work")
        let deadExchange = Broker.uniqueName("dead")
        let deadQueue = Broker.uniqueName("dead-letters")

        func declare(on connection: AMQPConnection, deliveryLimit: Int64) async throws {
            try await connection.declareExchange(deadExchange, type: .fanout)
            try await connection.declareQueue(deadQueue, arguments: ["x-queue-type": "quorum"])
            try await connection.bindQueue(deadQueue, to: deadExchange)
            try await connection.declareQueue(work, arguments: [
                "x-queue-type": "quorum",
                "x-delivery-limit": .int(deliveryLimit),
                "x-dead-letter-exchange": .string(deadExchange),
            ])
        }

        func remove(on connection: AMQPConnection) async throws {
            try await connection.deleteQueue(work)
            try await connection.deleteQueue(deadQueue)
            try await connection.deleteExchange(deadExchange)
        }
    }

    @Test func rejectedMessageLandsInTheDeadLetterQueue() async throws {
        let connection = try await Broker.connect()
        let topology = Topology()
        try await topology.declare(on: connection, deliveryLimit: 5)
        try await connection.publish(Array("poison".utf8), routingKey: topology.work, properties: .init(messageID: "poison-1"))

        let worker = try await Broker.connect("ferry-tests-worker")
        let delivery = try #require(try await take(1, from: try await worker.consume(queue: topology.work, prefetch: 1)).first)
        try await worker.reject(delivery, requeue: false)

        let dead = try #require(try await take(1, from: try await worker.consume(queue: topology.deadQueue, prefetch: 1)).first)
        #expect(dead.body == Array("poison".utf8))
        #expect(dead.properties.messageID == "poison-1")
        #expect(dead.properties.headers["x-death"] != nil || dead.properties.headers["x-first-death-reason"]?.stringValue == "rejected")
        try await worker.ack(dead)
        #expect(try await connection.inspectQueue(topology.work).messageCount == 0)
        try await worker.close()
        try await topology.remove(on: connection)
        try await connection.close()
    }

    @Test func quorumQueueWithDeliveryLimitDeadLettersAfterTheLimit() async throws {
        let connection = try await Broker.connect()
        let topology = Topology()
        let limit: Int64 = 2
        try await topology.declare(on: connection, deliveryLimit: limit)

        // The declared arguments are in force: declaring the same queue with another limit is refused
        // with 406 PRECONDITION_FAILED, and the connection stays usable afterwards.
        let mismatch = await #expect(throws: AMQPError.self) {
            try await connection.declareQueue(topology.work, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 9])
        }
        #expect(mismatch?.code == .channelClosed)
        #expect(mismatch?.replyCode == 406)
        #expect(try await connection.inspectQueue(topology.work).messageCount == 0)

        try await connection.publish(Array("flaky".utf8), routingKey: topology.work)
        let worker = try await Broker.connect("ferry-tests-limit")
        let consumer = try await worker.consume(queue: topology.work, prefetch: 1)
        // Every delivery is handed back; after `limit` returns the broker dead-letters the message.
        let counts = try await within(20, "\(limit + 1) deliveries") {
            var iterator = consumer.makeAsyncIterator()
            var counts: [Int] = []
            while counts.count <= Int(limit), let delivery = try await iterator.next() {
                counts.append(delivery.deliveryCount)
                try await worker.nack(delivery, requeue: true)
            }
            return counts
        }
        #expect(counts == Array(0...Int(limit)))
        let dead = try #require(try await take(1, from: try await worker.consume(queue: topology.deadQueue, prefetch: 1)).first)
        #expect(dead.body == Array("flaky".utf8))
        try await worker.ack(dead)
        try await worker.close()
        try await topology.remove(on: connection)
        try await connection.close()
    }
}
