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
