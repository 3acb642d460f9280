import FerryAMQP
import Foundation
import Logging
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The broker that scripts/test starts. These tests never skip: without a broker they fail and say how to start one.
enum Broker {
    static let url: AMQPURL = {
        let string = ProcessInfo.processInfo.environment["FERRY_TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5679/"
        return try! AMQPURL(string)
    }()

    /// The management API of the same node, used to force-close connections as a broker restart would.
    static let managementURL = ProcessInfo.processInfo.environment["FERRY_TEST_RABBITMQ_MANAGEMENT_URL"] ?? "http://127.0.0.1:15679"

    static let logger = Logger(label: "ferry.tests.broker")

    static func connect(_ name: String = "ferry-tests", options: AMQPConnectionOptions? = nil) async throws -> AMQPConnection {
        var options = options ?? AMQPConnectionOptions()
        options.name = name
        do {
            return try await AMQPConnection.connect(to: url, options: options, logger: logger)
        } catch {
            Issue.record("no RabbitMQ at \(url): \(error). Run the suite with scripts/test, which starts one, or set FERRY_TEST_AMQP_URL.")
            throw error
        }
    }

    static func uniqueName(_ prefix: String) -> String {
        "ferry-test.\(prefix).\(UUID().uuidString.prefix(8))"
    }

    /// Closes every connection whose client named it `name`, through the management API.
    static func forceClose(connectionNamed name: String) async throws {
        var found = false
        for _ in 0..<50 where !found {
            let connections = try await managementJSON("/api/connections") as? [[String: Any]] ?? []
            for connection in connections {
                let properties = connection["client_properties"] as? [String: Any]
                guard properties?["connection_name"] as? String == name, let id = connection["name"] as? String else { continue }
                var request = URLRequest(url: URL(string: managementURL + "/api/connections/" + id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)!)
                request.httpMethod = "DELETE"
                request.setValue("forced by test", forHTTPHeaderField: "X-Reason")
                authorize(&request)
                _ = try await URLSession.shared.data(for: request)
                found = true
            }
            if !found { try await Task.sleep(for: .milliseconds(200)) }  // the management stats lag a little
        }
        try #require(found, "connection \(name) not listed by the management API")
    }

    private static func managementJSON(_ path: String) async throws -> Any {
        var request = URLRequest(url: URL(string: managementURL + path)!)
        authorize(&request)
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONSerialization.jsonObject(with: data)
    }

    private static func authorize(_ request: inout URLRequest) {
        let credentials = Data("\(url.username):\(url.password)".utf8).base64EncodedString()
        request.setValue("Basic \(credentials)", forHTTPHeaderField: "Authorization")
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Runs `body`, failing with `TimedOut` after `seconds`.
func within<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(description: "\(what) did not happen within \(seconds) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Takes the next `count` deliveries of `consumer`, failing after `seconds`.
func take(_ count: Int, from consumer: AMQPConsumer, within seconds: Double = 10) async throws -> [AMQPDelivery] {
    try await within(seconds, "\(count) deliveries") {
        var iterator = consumer.makeAsyncIterator()
        var deliveries: [AMQPDelivery] = []
        while deliveries.count < count, let delivery = try await iterator.next() {
            deliveries.append(delivery)
        }
        return deliveries
    }
}
