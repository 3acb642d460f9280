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
    /// The attempt in progress: every caller waits for it rather than opening a connection of its own.
    private var opening: Task<AMQPConnection, any Error>?
    /// The last failed attempt: until `retryAt`, callers get its error at once instead of a new attempt.
    private var lastFailure: (error: any Error, retryAt: ContinuousClock.Instant)?
    private var pause: Duration
    private let firstPause: Duration, maxPause: Duration

    /// `firstPause` is the wait after a failed attempt before the next; it doubles up to `maxPause`.
    public init(url: AMQPURL, options: AMQPConnectionOptions, logger: Logger, firstPause: Duration = .milliseconds(500), maxPause: Duration = .seconds(10)) {
        self.url = url
        self.options = options
        self.logger = logger
        self.firstPause = firstPause
        self.maxPause = maxPause
        pause = firstPause
    }

    /// The open connection, connecting first if needed. At most one attempt runs at a time (the
    /// callers that arrive meanwhile share its outcome), and after a failure the next attempt waits
    /// a growing pause: until then callers get the last error at once, so a burst of requests while
    /// the broker is down opens no burst of connections.
    public func connection() async throws -> AMQPConnection {
        if let current, current.isConnected { return current }
        current = nil
        if let opening { return try await opening.value }
        if let lastFailure, ContinuousClock.now < lastFailure.retryAt { throw lastFailure.error }
        let attempt = Task { [url, options, logger] in
            let connection = try await AMQPConnection.connect(to: url, options: options, logger: logger)
            do {
                try await FerryTopology.declare(on: connection)
            } catch {
                try? await connection.close()
                throw error
            }
            return connection
        }
        opening = attempt
        defer { opening = nil }
        do {
            let connection = try await attempt.value
            logger.info("connected to RabbitMQ", metadata: ["amqp.url": "\(url)", "amqp.connection": "\(options.name)"])
            if everConnected { Counter(label: "ferry_broker_reconnects_total", dimensions: [("connection", options.name)]).increment() }
            everConnected = true
            current = connection
            lastFailure = nil
            pause = firstPause
            return connection
        } catch {
            lastFailure = (error, ContinuousClock.now + pause)
            pause = min(pause * 2, maxPause)
            throw error
        }
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
