import FerryAMQP
import FerryTestSupport
import Foundation
import Testing

@Suite("Unreachable brokers and lost connections")
struct ConnectionFailureTests {
    @Test func closedPortFailsFastWithAClearError() async throws {
        let port = try LocalSocket.unusedPort()
        let error = await #expect(throws: AMQPError.self) {
            _ = try await AMQPConnection.connect(
                to: AMQPURL(host: "127.0.0.1", port: port), options: .init(connectTimeout: .seconds(2)), logger: Broker.logger
            )
        }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(error?.message.contains("check that the broker runs") == true)
    }

    /// The error says the handshake timed out, so the 1 s connect timeout ended the wait (a lost
    /// heartbeat would fail differently); the time limit only catches a hang, since a loaded machine
    /// may take seconds longer to notice.
    @Test(.timeLimit(.minutes(1))) func silentListenerTimesOutWithinTheConnectTimeout() async throws {
        // Accepts TCP connections but never speaks AMQP, like a firewall or a wrong port.
        let listener = try LocalSocket.listen()
        defer { listener.close() }
        let error = await #expect(throws: AMQPError.self) {
            _ = try await AMQPConnection.connect(
                to: AMQPURL(host: "127.0.0.1", port: listener.port), options: .init(connectTimeout: .seconds(1)), logger: Broker.logger
            )
        }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("handshake") == true)
    }

    @Test func wrongPasswordIsRefusedWithTheReason() async throws {
        var url = Broker.url
        url.password = "not-the-password"
        let error = await #expect(throws: AMQPError.self) {
            _ = try await AMQPConnection.connect(to: url, options: .init(connectTimeout: .seconds(5)), logger: Broker.logger)
        }
        #expect(error?.code == .authenticationFailed || error?.code == .connectFailed)
        #expect(error?.message.contains("not-the-password") == false)
    }

    @Test func lostConnectionIsReportedToConsumersPublishersAndWaiters() async throws {
        let name = Broker.uniqueName("lost")
        let connection = try await Broker.connect(name)
        let queue = Broker.uniqueName("lost-queue")
        try await connection.declareQueue(queue, exclusive: true, autoDelete: true)
        let consumer = try await connection.consume(queue: queue, prefetch: 1)

        try await Broker.forceClose(connectionNamed: name)

        let ended = await #expect(throws: AMQPError.self) { _ = try await take(1, from: consumer, within: 10) }
        #expect(ended?.code == .connectionLost)
        let reason = try await within(5, "closed()") { await connection.closed() }
        #expect(reason.code == .connectionLost)
        #expect(reason.replyCode == 320)  // CONNECTION_FORCED, as on a broker shutdown
        #expect(!connection.isConnected)
        let publish = await #expect(throws: AMQPError.self) { try await connection.publish([1], routingKey: queue) }
        #expect(publish?.requiresReconnect == true)
    }

    @Test func unroutableMandatoryMessageIsReturned() async throws {
        let connection = try await Broker.connect()
        let error = await #expect(throws: AMQPError.self) {
            try await connection.publish(Array("lost?".utf8), routingKey: Broker.uniqueName("nobody-listens"))
        }
        #expect(error?.code == .returned)
        #expect(error?.replyCode == 312)  // NO_ROUTE
        // The connection remains usable for the next message.
        let queue = Broker.uniqueName("after-return")
        try await connection.declareQueue(queue, exclusive: true)
        try await connection.publish(Array("ok".utf8), routingKey: queue)
        #expect(try await connection.inspectQueue(queue).messageCount == 1)
        try await connection.close()
    }

    @Test func messageRefusedByTheBrokerIsANack() async throws {
        let connection = try await Broker.connect()
        let queue = Broker.uniqueName("full")
        // A classic queue enforces the length limit exactly (a quorum queue only approximately).
        try await connection.declareQueue(queue, exclusive: true, arguments: ["x-max-length": 1, "x-overflow": "reject-publish"])
        try await connection.publish(Array("first".utf8), routingKey: queue)
        let error = await #expect(throws: AMQPError.self) { try await connection.publish(Array("second".utf8), routingKey: queue) }
        #expect(error?.code == .nacked)
        // The nack concerns that message only: the connection goes on, and the queue holds the first.
        #expect(connection.isConnected)
        #expect(try await connection.inspectQueue(queue).messageCount == 1)
        try await connection.close()
    }

    @Test func invalidURLsAreRefusedWithAHint() throws {
        #expect(throws: AMQPError.self) { try AMQPURL("http://localhost") }
        #expect(throws: AMQPError.self) { try AMQPURL("amqp://") }
        let url = try AMQPURL("amqp://ferry:s3cret@broker.internal:5673/%2Fjobs")
        #expect(url.host == "broker.internal" && url.port == 5673 && url.username == "ferry" && url.password == "s3cret")
        #expect(url.virtualHost == "/jobs")
        #expect(!url.description.contains("s3cret"))
        #expect(try AMQPURL("amqp://localhost").virtualHost == "/")
    }
}
