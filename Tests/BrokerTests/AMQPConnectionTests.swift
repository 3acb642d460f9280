import FerryAMQP
import Foundation
import Testing

@Suite("AMQP against a real RabbitMQ")
struct AMQPConnectionTests {
    @Test func publishConfirmConsumeAckRoundTrip() async throws {
        let publisher = try await Broker.connect("ferry-tests-publisher")
        let consumerConnection = try await Broker.connect("ferry-tests-consumer")
        let queue = Broker.uniqueName("roundtrip")
        try await publisher.declareQueue(queue, arguments: ["x-queue-type": "quorum"])

        let body = Array(#"{"jobID":"j-1"}"#.utf8)
        let properties = AMQPProperties(contentType: "application/json", messageID: "j-1", headers: ["attempt": 1, "note": "first"])
        try await publisher.publish(body, routingKey: queue, properties: properties)
        #expect(try await publisher.inspectQueue(queue).messageCount == 1)

        let consumer = try await consumerConnection.consume(queue: queue, prefetch: 1)
        let delivery = try #require(try await take(1, from: consumer).first)
        #expect(delivery.body == body)
        #expect(delivery.properties.contentType == "application/json")
        #expect(delivery.properties.messageID == "j-1")
        #expect(delivery.properties.persistent)
        #expect(delivery.properties.headers["attempt"] == .int(1))
        #expect(delivery.properties.headers["note"]?.stringValue == "first")
        #expect(!delivery.redelivered)
        try await consumerConnection.ack(delivery)
        try await consumerConnection.close()

        // Acknowledged means gone: a new consumer finds nothing, and the queue is empty.
        let again = try await Broker.connect("ferry-tests-consumer-2")
        let second = try await again.consume(queue: queue, prefetch: 1)
        await #expect(throws: TimedOut.self) { _ = try await take(1, from: second, within: 1.5) }
        #expect(try await publisher.inspectQueue(queue).messageCount == 0)
        try await again.close()
        try await publisher.deleteQueue(queue)
        try await publisher.close()
    }

    @Test func unacknowledgedMessageIsRedeliveredAfterItsConsumerConnectionCloses() async throws {
        let admin = try await Broker.connect()
        let queue = Broker.uniqueName("redeliver")
        try await admin.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
        try await admin.publish(Array("job-7".utf8), routingKey: queue)

        let first = try await Broker.connect("ferry-tests-first")
        let firstDelivery = try #require(try await take(1, from: try await first.consume(queue: queue, prefetch: 1)).first)
        #expect(!firstDelivery.redelivered)
        try await first.close()  // without acknowledging: the job must not be lost

        let second = try await Broker.connect("ferry-tests-second")
        let redelivery = try #require(try await take(1, from: try await second.consume(queue: queue, prefetch: 1)).first)
        #expect(redelivery.body == Array("job-7".utf8))
        #expect(redelivery.redelivered)
        #expect(redelivery.deliveryCount >= 1)
        try await second.ack(redelivery)
        try await second.close()
        try await admin.deleteQueue(queue)
        try await admin.close()
    }

    @Test func prefetchLimitsUnacknowledgedDeliveries() async throws {
        let connection = try await Broker.connect()
        let queue = Broker.uniqueName("prefetch")
        try await connection.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
        for index in 0..<5 { try await connection.publish(Array("m\(index)".utf8), routingKey: queue) }

        let consumerConnection = try await Broker.connect("ferry-tests-prefetch")
        let consumer = try await consumerConnection.consume(queue: queue, prefetch: 2)
        let firstTwo = try await take(2, from: consumer)
        // With two unacknowledged, the broker holds the other three back until one is acknowledged.
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await connection.inspectQueue(queue).messageCount == 3)
        try await consumerConnection.ack(firstTwo[0])
        let third = try await take(1, from: consumer)
        #expect(third.first?.body == Array("m2".utf8))
        #expect(try await connection.inspectQueue(queue).messageCount == 2)
        try await consumerConnection.close()
        try await connection.deleteQueue(queue)
        try await connection.close()
    }

    /// A job keeps its delivery unacknowledged for hours; the connection must stay up while nothing
    /// else happens on it. With a 2 s heartbeat, the broker closes a silent connection after about 4 s.
    @Test func idleConnectionStaysAliveThroughHeartbeats() async throws {
        let connection = try await Broker.connect("ferry-tests-heartbeat", options: .init(heartbeatSeconds: 2))
        let queue = Broker.uniqueName("heartbeat")
        try await connection.declareQueue(queue, exclusive: true)
        try await Task.sleep(for: .seconds(7))
        #expect(connection.isConnected)
        try await connection.publish(Array("still here".utf8), routingKey: queue)
        #expect(try await connection.inspectQueue(queue).messageCount == 1)
        try await connection.close()
    }

    /// Concurrent publishes share the connection and are confirmed together; a returned one fails alone.
    @Test func concurrentPublishesArePipelinedAndEachGetsItsOwnOutcome() async throws {
        let connection = try await Broker.connect("ferry-tests-pipelined")
        let queue = Broker.uniqueName("pipelined")
        try await connection.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
        let unroutable = Broker.uniqueName("nobody")
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let key = index == 100 ? unroutable : queue
                    do {
                        try await connection.publish(Array("m\(index)".utf8), routingKey: key)
                        return (index, true)
                    } catch let error as AMQPError where error.code == .returned {
                        return (index, false)
                    }
                }
            }
            var outcomes: [Int: Bool] = [:]
            for try await (index, confirmed) in group { outcomes[index] = confirmed }
            return outcomes
        }
        #expect(outcomes.count == 200)
        #expect(outcomes.filter { !$0.value }.map(\.key) == [100])
        #expect(try await connection.inspectQueue(queue).messageCount == 199)
        try await connection.deleteQueue(queue)
        try await connection.close()
    }
}
