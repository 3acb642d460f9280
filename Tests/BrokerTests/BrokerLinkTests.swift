import FerryAMQP
import FerryBroker
import FerryTestSupport
import Foundation
import Testing

/// The link every service keeps to the broker: while the broker does not answer, a burst of
/// requests (the Producer's publishes, the Backend's cancel requests) opens one connection attempt,
/// not one each, and the next attempt waits its pause.
@Suite("The broker link")
struct BrokerLinkTests {
    /// Connections the listener has accepted so far, taken off its queue without waiting.
    static func accepted(_ listener: LocalSocket) -> Int {
        _ = fcntl(listener.descriptor, F_SETFL, fcntl(listener.descriptor, F_GETFL) | O_NONBLOCK)
        var count = 0
        while case let peer = accept(listener.descriptor, nil, nil), peer >= 0 {
            count += 1
            close(peer)
        }
        return count
    }

    @Test(.timeLimit(.minutes(1))) func aBurstWhileTheBrokerIsSilentMakesOneAttemptThenWaitsItsPause() async throws {
        // Accepts TCP connections and never speaks AMQP: every attempt takes its whole connect timeout.
        let listener = try LocalSocket.listen()
        defer { listener.close() }
        let link = BrokerLink(
            url: AMQPURL(host: "127.0.0.1", port: listener.port), options: .init(connectTimeout: .seconds(1)), logger: Broker.logger,
            firstPause: .seconds(30)
        )
        let failures = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 {
                group.addTask { (try? await link.connection()) == nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(failures == 20, "every caller gets the attempt's error")
        #expect(Self.accepted(listener) == 1, "the 20 callers shared one connection attempt")

        // Within the pause, callers get the last error at once and nothing reaches the listener.
        let started = ContinuousClock.now
        let error = await #expect(throws: AMQPError.self) { _ = try await link.connection() }
        #expect(error?.code == .timedOut, "the last attempt's own error")
        #expect(ContinuousClock.now - started < .milliseconds(500), "no new attempt during the pause")
        #expect(Self.accepted(listener) == 0)
    }

    @Test func afterThePauseTheLinkConnectsAndDeclaresTheTopology() async throws {
        let port = try LocalSocket.unusedPort()
        // A closed port fails at once; the pause after it is short here.
        let dead = BrokerLink(url: AMQPURL(host: "127.0.0.1", port: port), options: .init(connectTimeout: .seconds(1)), logger: Broker.logger, firstPause: .milliseconds(200))
        await #expect(throws: AMQPError.self) { _ = try await dead.connection() }
        let link = BrokerLink(url: Broker.url, options: .init(name: Broker.uniqueName("link")), logger: Broker.logger, firstPause: .milliseconds(200))
        let first = try await link.connection()
        let again = try await link.connection()
        #expect(first === again, "an open connection is reused")
        await link.close()
    }
}
