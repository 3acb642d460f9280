import FerryAMQP
import FerryTestSupport
import Foundation
import Synchronization
import Testing

/// A broker that stops reading, as RabbitMQ does to publishing connections during a memory or disk
/// alarm: rabbitmq-c would wait for room in the socket's send buffer forever.
@Suite("A broker that stops reading")
struct BlockedBrokerTests {
    /// A private node (its alarm must not block the other suites), its memory watermark at 0 so the
    /// memory alarm is raised at once; large publishes then fill the socket buffers and the send
    /// stalls. The publish must end with `timedOut` after the 2 s send timeout. Without a limit it
    /// never returns, so the test races it against 90 s instead of awaiting it.
    @Test func aPublishTheBrokerDoesNotReadEndsWithinTheSendTimeout() async throws {
        let broker = try await PrivateBroker(port: 5711)
        do {
            let url = try AMQPURL(broker.url)
            let connection = try await AMQPConnection.connect(
                to: url, options: .init(name: "ferry-test-blocked", confirmTimeout: .seconds(120), sendTimeout: .seconds(2)), logger: Broker.logger
            )
            let queue = "ferry-test-blocked-\(UUID().uuidString.prefix(8))"
            try await connection.declareQueue(queue)
            try await broker.control("set_vm_memory_high_watermark 0")

            let started = ContinuousClock.now
            let outcome = await Self.firstOf(seconds: 90) {
                let body = [UInt8](repeating: 0x2A, count: 8 << 20)
                // Sixteen 8 MiB messages are far more than the kernel buffers on loopback hold.
                for _ in 0..<16 { try await connection.publish(body, routingKey: queue) }
            }
            let waited = ContinuousClock.now - started
            try await broker.control("set_vm_memory_high_watermark 0.4")

            switch outcome {
            case nil:
                Issue.record("the publish was still waiting after 90 s: a broker that stops reading hangs the connection")
            case .some(.success):
                Issue.record("the publishes all succeeded: the memory alarm did not block the connection, so nothing was tested")
            case .some(.failure(let error)):
                let amqp = try #require(error as? AMQPError, "\(error)")
                #expect(amqp.code == .timedOut, "\(amqp)")
                #expect(amqp.message.contains("alarm"), "the error should say why the broker may not read: \(amqp.message)")
                #expect(waited < .seconds(60), "the publish ended only after \(waited)")
                #expect(!connection.isConnected)
            }
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    /// Runs `body` and returns how it ended, or nil when it has not ended after `seconds`; the body
    /// is left running then (a hung C call cannot be cancelled).
    static func firstOf(seconds: Int, _ body: @escaping @Sendable () async throws -> Void) async -> Result<Void, any Error>? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, any Error>?, Never>) in
            let once = Once(continuation)
            Task {
                do { try await body(); once.settle(.success(())) } catch { once.settle(.failure(error)) }
            }
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                once.settle(nil)
            }
        }
    }

    /// Resumes a continuation with the first value it is given.
    final class Once: Sendable {
        private let continuation: Mutex<CheckedContinuation<Result<Void, any Error>?, Never>?>
        init(_ continuation: CheckedContinuation<Result<Void, any Error>?, Never>) { self.continuation = Mutex(continuation) }
        func settle(_ value: Result<Void, any Error>?) {
            let first = continuation.withLock { stored in
                defer { stored = nil }
                return stored
            }
            first?.resume(returning: value)
        }
    }
}
