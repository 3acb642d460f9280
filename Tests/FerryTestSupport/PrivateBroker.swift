import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A private RabbitMQ node for one test (scripts/lib/broker.sh), so that stopping it or raising an
/// alarm on it disturbs no other suite.
public final class PrivateBroker: Sendable {
    public let directory: String
    public let port: Int

    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/" }

    public init(port: Int) async throws {
        self.port = port
        directory = NSTemporaryDirectory() + "ferry-fault-broker-\(port)-\(UUID().uuidString.prefix(6))"
        let started = try await Self.shell("broker_start '\(directory)' \(port)")
        guard started.status == 0 else { throw BrokerScriptError(message: "the private broker did not start: \(started.output)") }
    }

    /// Runs `rabbitmqctl` against this node.
    public func control(_ arguments: String) async throws {
        let outcome = try await Self.shell("broker_ctl '\(directory)' \(arguments)")
        guard outcome.status == 0 else { throw BrokerScriptError(message: "rabbitmqctl \(arguments): \(outcome.output)") }
    }

    public func stop() async {
        _ = try? await Self.shell("broker_stop '\(directory)'")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Messages in a queue, through the management API, waiting up to 10 s for it to reach `expected`
    /// (the API's figures are refreshed every second).
    public func messages(in queue: String, expected: Int) async throws -> Int {
        var count = 0
        for _ in 0..<20 {
            count = try await messages(in: queue)
            if count == expected { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        return count
    }

    private func messages(in queue: String) async throws -> Int {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port + 10000)/api/queues/%2F/\(queue)")!)
        request.setValue("Basic \(Data("guest:guest".utf8).base64EncodedString())", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        struct Queue: Decodable { var messages: Int? }
        return (try? JSONDecoder().decode(Queue.self, from: data).messages ?? 0) ?? 0
    }

    /// Runs a function of scripts/lib/broker.sh with system(3). Foundation's Process is not used: the
    /// Erlang node the script detaches keeps descriptors it inherited, and Process then never sees
    /// the shell end.
    private static func shell(_ command: String) async throws -> ChildProcess.Outcome {
        let log = NSTemporaryDirectory() + "ferry-broker-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let script = "cd '\(Repository.root)' && source scripts/lib/broker.sh && \(command)"
        let line = "/bin/bash -c \"\(script.replacingOccurrences(of: "\"", with: "\\\""))\" > '\(log)' 2>&1 < /dev/null"
        let status = try await onOwnThread { system(line) }
        let exitStatus = (status >> 8) & 0xFF
        return ChildProcess.Outcome(status: exitStatus, output: (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}

/// A broker script that failed, with its output.
public struct BrokerScriptError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
