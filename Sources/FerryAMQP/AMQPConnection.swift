import CRabbitMQ
import Dispatch
import Foundation
import Logging
import Synchronization

/// One connection to RabbitMQ with one channel in publisher-confirm mode.
///
/// rabbitmq-c forbids concurrent use of a connection and its calls block, so every C call runs on
/// `queue`, a serial dispatch queue of this connection's own, never on the cooperative pool; every
/// blocking wait has a timeout (the calls rabbitmq-c lets wait forever get one from `StallGuard`). A read source on the socket hands every arriving frame (deliveries,
/// confirms, heartbeats) to the queue as it comes, and a timer sends heartbeats and notices a lost
/// connection, which it reports through `closed()` and by ending every consumer stream with
/// `AMQPError.Code.connectionLost`. A lost connection is never reused: open a new one.
///
/// Use separate connections for publishing and consuming, as RabbitMQ advises: flow control that
/// slows a publisher then never delays acknowledgements.
public final class AMQPConnection: @unchecked Sendable {
    // Sendable invariant: `state` and every `var` of this class are touched only on `queue`;
    // `lifecycle`, read from any thread, is protected by its Mutex.
    let state: amqp_connection_state_t
    let queue: DispatchQueue
    let options: AMQPConnectionOptions
    let logger: Logger
    let channel: amqp_channel_t = 1

    var isOpen = false
    /// Bumped whenever the channel is reopened, so that deliveries of the old channel cannot be acknowledged.
    var channelGeneration = 0
    /// The publisher-confirm sequence number the next publish gets (1 after every confirm.select).
    var nextPublishTag: UInt64 = 1
    var consumers: [String: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation] = [:]
    /// Publishes waiting for the broker's confirm, by publish tag.
    var pendingConfirms: [UInt64: PendingConfirm] = [:]

    /// The socket's read source and the heartbeat timer (see `startWatching()`).
    var watchers: [any DispatchSourceProtocol] = []
    /// Ends a send that the broker does not take within `options.sendTimeout` (see `unbounded(_:)`).
    var stallGuard: StallGuard?

    private struct Lifecycle {
        var endedBy: AMQPError?
        var waiters: [CheckedContinuation<AMQPError, Never>] = []
    }
    private let lifecycle = Mutex(Lifecycle())

    private init(options: AMQPConnectionOptions, logger: Logger) {
        // amqp_new_connection returns NULL only when malloc fails.
        self.state = amqp_new_connection()!
        self.options = options
        self.logger = logger
        self.queue = DispatchQueue(label: "ferry.amqp.\(options.name)")
    }

    deinit {
        // close() is the path that reports errors; this frees the C state and its socket.
        stopWatching()
        amqp_destroy_connection(state)
    }

    /// Opens a connection, logs in, opens the channel and enables publisher confirms. Fails within
    /// `options.connectTimeout` when the broker is unreachable or does not answer.
    public static func connect(
        to url: AMQPURL, options: AMQPConnectionOptions = .init(), logger: Logger
    ) async throws -> AMQPConnection {
        let connection = AMQPConnection(options: options, logger: logger)
        try await connection.perform {
            try connection.open(url)
            connection.startWatching()
        }
        logger.debug("AMQP connection open", metadata: ["amqp.url": "\(url)", "amqp.connection": "\(options.name)"])
        return connection
    }

    /// True until the connection is closed or lost.
    public var isConnected: Bool { lifecycle.withLock { $0.endedBy == nil } }

    /// Waits until the connection ends and says why: `connectionLost` for a broker restart, a
    /// dropped socket or missed heartbeats, including a `close()` by this side.
    public func closed() async -> AMQPError {
        await withCheckedContinuation { continuation in
            let endedBy: AMQPError? = lifecycle.withLock { state in
                if state.endedBy == nil { state.waiters.append(continuation) }
                return state.endedBy
            }
            if let endedBy { continuation.resume(returning: endedBy) }
        }
    }

    /// Closes the connection cleanly. Unacknowledged deliveries go back to their queues; consumer
    /// streams finish without an error.
    public func close() async throws {
        try await perform {
            guard self.isOpen else { return }
            let reply = amqp_connection_close(self.state, Int32(AMQP_REPLY_SUCCESS))
            self.end(AMQPError(.connectionLost, "the connection was closed by this client"), clean: true)
            if reply.reply_type != AMQP_RESPONSE_NORMAL {
                throw AMQPError(.connectionLost, "closing the connection: \(Self.describe(reply))")
            }
        }
    }

    // MARK: - Running on the connection's queue

    /// Runs `body` on the connection's queue and returns its result to the calling task.
    func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                let result = Result { try body() }
                self.readBufferedFrames()
                continuation.resume(with: result)
            }
        }
    }

    func ensureOpen() throws {
        guard isOpen else {
            throw lifecycle.withLock { $0.endedBy } ?? AMQPError(.connectionLost, "the connection is not open")
        }
    }

    /// Runs a rabbitmq-c call that has no deadline of its own (a send) under the stall guard.
    func unbounded<T>(_ body: () -> T) -> T {
        if let stallGuard { return stallGuard.around(body) }
        return body()
    }

    /// Ends the connection: consumers are finished (with `error` unless `clean`), waiters told, and
    /// the socket shut down so that the broker requeues what this connection had not acknowledged.
    /// Returns the error the connection ended with: `timedOut` when the stall guard ended a send
    /// (the caller's own error then only says that the socket failed).
    @discardableResult
    func end(_ reported: AMQPError, clean: Bool = false) -> AMQPError {
        guard isOpen else { return lifecycle.withLock { $0.endedBy } ?? reported }
        let error = stallGuard?.tripped == true
            ? AMQPError(
                .timedOut,
                "the broker took no data from this connection for \(options.sendTimeout); it may be blocking publishers "
                    + "on a memory or disk alarm (rabbitmqctl status lists alarms)"
            )
            : reported
        isOpen = false
        stopWatching()
        if !clean {
            logger.warning("AMQP connection lost", metadata: ["amqp.connection": "\(options.name)", "error": "\(error.message)"])
        }
        for continuation in consumers.values {
            if clean { continuation.finish() } else { continuation.finish(throwing: error) }
        }
        consumers.removeAll()
        failPendingConfirms(error)
        let socket = amqp_get_sockfd(state)
        if socket >= 0 { shutdown(socket, Int32(SHUT_RDWR)) }
        let waiters = lifecycle.withLock { state in
            state.endedBy = error
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: error) }
        return error
    }

    // MARK: - Opening

    private func open(_ url: AMQPURL) throws {
        guard let socket = amqp_tcp_socket_new(state) else {
            throw AMQPError(.connectFailed, "cannot create a socket for \(url)")
        }
        var handshakeTimeout = timeval(options.connectTimeout)
        var rpcTimeout = timeval(options.rpcTimeout)
        amqp_set_handshake_timeout(state, &handshakeTimeout)
        amqp_set_rpc_timeout(state, &rpcTimeout)

        var connectTimeout = timeval(options.connectTimeout)
        errno = 0
        let status = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &connectTimeout)
        if status != AMQP_STATUS_OK.rawValue {
            // rabbitmq-c leaves errno as the non-blocking connect left it; EINPROGRESS explains nothing.
            let osReason = errno != 0 && errno != EINPROGRESS ? " (\(String(cString: strerror(errno))))" : ""
            let timedOut = status == AMQP_STATUS_TIMEOUT.rawValue
            throw AMQPError(
                timedOut ? .timedOut : .connectFailed,
                "cannot connect to RabbitMQ at \(url.host):\(url.port) within \(options.connectTimeout): "
                    + "\(Self.describe(status: status))\(osReason); check that the broker runs and that amqp.url is right"
            )
        }

        let arena = CArena()
        var clientProperties = arena.table(["connection_name": .string(options.name)])
        let login = ferry_amqp_login_plain_with_properties(
            state, url.virtualHost, 0, 131_072, Int32(options.heartbeatSeconds), &clientProperties, url.username, url.password
        )
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            throw loginError(login, url: url)
        }
        isOpen = true
        try openChannel()
    }

    private func loginError(_ reply: amqp_rpc_reply_t, url: AMQPURL) -> AMQPError {
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == FERRY_CONNECTION_CLOSE,
           let close = reply.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee {
            let text = String(bytes: close.reply_text)
            switch close.reply_code {
            case 403: return AMQPError(.authenticationFailed, "RabbitMQ at \(url.host):\(url.port) refused user \"\(url.username)\": \(text); check the user and password in amqp.url", replyCode: 403)
            case 530: return AMQPError(.authenticationFailed, "RabbitMQ refused access to vhost \"\(url.virtualHost)\": \(text); create it or grant the user permissions", replyCode: 530)
            default: return AMQPError(.connectFailed, "RabbitMQ closed the connection during login: \(close.reply_code) \(text)", replyCode: Int(close.reply_code))
            }
        }
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION, reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
            return AMQPError(.timedOut, "\(url.host):\(url.port) accepted the connection but did not complete the AMQP handshake within \(options.connectTimeout); is it a RabbitMQ listener?")
        }
        return AMQPError(.connectFailed, "login to \(url) failed: \(Self.describe(reply))")
    }

    /// Opens the channel and puts it in confirm mode; used at connect time and after the broker closed it.
    func openChannel() throws {
        amqp_channel_open(state, channel)
        try check(amqp_get_rpc_reply(state), "opening channel \(channel)")
        amqp_confirm_select(state, channel)
        try check(amqp_get_rpc_reply(state), "enabling publisher confirms")
        nextPublishTag = 1
        channelGeneration += 1
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
