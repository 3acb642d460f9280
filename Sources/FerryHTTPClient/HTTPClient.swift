import CCurl
import Logging
import NIOPosix
import Synchronization

/// An HTTP client over libcurl for the calls between Ferry's services.
///
/// libcurl's transfers block, so each runs on the client's own thread pool, never on the cooperative
/// pool. Easy handles are kept after use and handed out last-in first-out, so consecutive requests
/// reuse the same keep-alive connection. Call `shutdown()` when done.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// Transfers that can run at once (threads in the pool).
        public var maxConcurrentRequests: Int
        /// TCP connect must finish within this.
        public var connectTimeout: Duration
        /// Timeout for requests that set none; nil means none.
        public var defaultTimeout: Duration?

        public init(maxConcurrentRequests: Int = 8, connectTimeout: Duration = .seconds(5), defaultTimeout: Duration? = .seconds(30)) {
            self.maxConcurrentRequests = maxConcurrentRequests
            self.connectTimeout = connectTimeout
            self.defaultTimeout = defaultTimeout
        }
    }

    private let configuration: Configuration
    private let threadPool: NIOThreadPool
    private let idleHandles = Mutex<[CurlEasyHandle]>([])
    private let logger: Logger

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "ferry.http-client")) {
        CurlEasyHandle.initializeLibrary()
        self.configuration = configuration
        self.logger = logger
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.maxConcurrentRequests)
        threadPool.start()
    }

    /// Stops the thread pool and frees the idle handles (closing their connections).
    public func shutdown() async throws {
        try await threadPool.shutdownGracefully()
        idleHandles.withLock { $0.removeAll() }
    }

    /// Starts `request` and returns as soon as the response head arrived; the body follows through
    /// the returned pipe while the transfer goes on. Closing the pipe aborts the transfer. This is
    /// what a proxy needs: neither body is ever held whole in memory.
    public func stream(_ request: HTTPRequest, idleTimeout: Duration? = nil) async throws -> HTTPStreamedResponse {
        let pipe = ChunkPipe(idleTimeout: idleTimeout)
        var request = request
        request.destination = .stream(pipe)
        let head = OneShot<(Int, [String: String])>()
        let transfer = try CurlTransfer(request: request, configuration: configuration) { status, headers in
            head.resolve(.success((status, headers)))
        }
        threadPool.submit { [self] state in
            guard state == .active else {
                let error = HTTPClientError(.cancelled, "the HTTP client is shut down")
                head.resolve(.failure(error))
                pipe.finish(throwing: error)
                return
            }
            let handle = idleHandles.withLock { $0.popLast() } ?? CurlEasyHandle()
            defer { idleHandles.withLock { $0.append(handle) } }
            do {
                let response = try transfer.perform(on: handle)
                head.resolve(.success((response.status, response.headers)))
                pipe.finish()
            } catch {
                head.resolve(.failure(error))
                pipe.finish(throwing: error)
            }
        }
        let (status, headers) = try await head.value()
        return HTTPStreamedResponse(status: status, headers: headers, body: pipe)
    }

    /// Performs `request`. Throws for transport failures (connect, timeout, reset, a file that cannot be
    /// read or written); an HTTP error status is a normal response: see `HTTPResponse.isSuccess`.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = try CurlTransfer(request: request, configuration: configuration)
        return try await withTaskCancellationHandler {
            try await threadPool.runIfActive { [self] in
                let handle = idleHandles.withLock { $0.popLast() } ?? CurlEasyHandle()
                defer { idleHandles.withLock { $0.append(handle) } }
                return try transfer.perform(on: handle)
            }
        } onCancel: {
            transfer.cancel()
        }
    }
}

/// A response whose body is still arriving.
public struct HTTPStreamedResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    /// Read chunks with `read()` until it returns nil; `close()` it to stop the transfer early.
    public var body: ChunkPipe
}

/// A value that is set once and awaited.
final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, any Error>?, waiter: CheckedContinuation<Value, any Error>?)>((nil, nil))

    func resolve(_ result: Result<Value, any Error>) {
        let waiter: CheckedContinuation<Value, any Error>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let result: Result<Value, any Error>? = state.withLock { state in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let result { continuation.resume(with: result) }
        }
    }
}
