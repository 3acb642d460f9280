import FerryAMQP
import Foundation
import Logging
import Metrics

/// One logical link to the broker that outlives connections: `connection()` hands out the open
/// connection, or opens a new one (declaring the topology) when the last one was lost.
public actor BrokerLink {
    private let url: AMQPURL
    private let options: AMQPConnectionOptions
    private let logger: Logger
    private var current: AMQPConnection?
    private var everConnected = false

    public init(url: AMQPURL, options: AMQPConnectionOptions, logger: Logger) {
        self.url = url
        self.options = options
        self.logger = logger
    }

    /// The open connection, connecting first if needed. Throws when the broker cannot be reached.
    public func connection() async throws -> AMQPConnection {
        if let current, current.isConnected { return current }
        current = nil
        let connection = try await AMQPConnection.connect(to: url, options: options, logger: logger)
        try await FerryTopology.declare(on: connection)
        logger.info("connected to RabbitMQ", metadata: ["amqp.url": "\(url)", "amqp.connection": "\(options.name)"])
        if everConnected { Counter(label: "ferry_broker_reconnects_total", dimensions: [("connection", options.name)]).increment() }
        everConnected = true
        current = connection
        return connection
    }

    /// Closes the current connection, if any.
    public func close() async {
        try? await current?.close()
        current = nil
    }

    /// Runs `body` with a connection until the task is cancelled (wrap it in `cancelWhenGracefulShutdown`), reconnecting with a growing pause
    /// (0.5 s doubling to 10 s) whenever the broker is unreachable or the connection is lost.
    public nonisolated func keepRunning(_ what: String, _ body: @escaping @Sendable (AMQPConnection) async throws -> Void) async {
        var pause: Duration = .milliseconds(500)
        while !Task.isCancelled {
            do {
                let connection = try await connection()
                pause = .milliseconds(500)
                try await body(connection)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("\(what) interrupted; reconnecting in \(pause)", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(10))
        }
    }
}
