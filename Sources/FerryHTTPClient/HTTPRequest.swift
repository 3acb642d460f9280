/// One request for `HTTPClient`. Bodies can come from memory or stream from a file; responses can
/// stay in memory (capped) or stream to a file.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case none
        case bytes([UInt8])
        /// Streamed from disk while it is sent; memory does not grow with the file.
        case file(path: String)
        /// Streamed from a pipe that other code fills (a proxied upload); `length` when known.
        case stream(ChunkPipe, length: Int64?)
    }

    public enum ResponseDestination: Sendable {
        /// Kept in memory; a longer body fails the request with `responseTooLarge`.
        case memory(maxBytes: Int)
        /// A 2xx body streams to `path` (through a temporary name, renamed when complete); any other
        /// status keeps the body in memory for the error message.
        case file(path: String)
        /// Every body chunk goes into the pipe as it arrives, whatever the status (a proxy).
        case stream(ChunkPipe)
    }

    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: Body
    public var destination: ResponseDestination
    /// The whole exchange must finish within this; nil waits as long as data keeps flowing.
    public var timeout: Duration?
    /// Abort a transfer that moves fewer than `bytesPerSecond` for `seconds` (a trickling peer).
    public var lowSpeed: (bytesPerSecond: Int, seconds: Int)?

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: Body = .none,
        destination: ResponseDestination = .memory(maxBytes: 16 << 20), timeout: Duration? = nil
    ) {
        self.method = method.uppercased()
        self.url = url
        self.headers = headers
        self.body = body
        self.destination = destination
        self.timeout = timeout
    }
}

/// What came back.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names in lower case; repeated headers joined with ", ".
    public var headers: [String: String]
    /// The body when it was kept in memory (always, for non-2xx statuses).
    public var body: [UInt8]
    /// Bytes received for the body, wherever they went.
    public var bodyBytes: Int64
    /// Connections opened for this request: 0 when an earlier connection was reused.
    public var newConnections: Int

    public var isSuccess: Bool { (200..<300).contains(status) }
}
