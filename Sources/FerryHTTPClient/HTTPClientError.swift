/// A request that did not complete, or completed with an error status, and why.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case invalidRequest = "invalid request"
            case connectFailed = "cannot connect"
            case timedOut = "timed out"
            case transferFailed = "transfer failed"
            case responseTooLarge = "response too large"
            case file = "file error"
            case cancelled = "cancelled"
            case stalled = "stalled"
            case status = "error status"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let invalidRequest = Code(.invalidRequest)
        public static let connectFailed = Code(.connectFailed)
        public static let timedOut = Code(.timedOut)
        public static let transferFailed = Code(.transferFailed)
        public static let responseTooLarge = Code(.responseTooLarge)
        public static let file = Code(.file)
        public static let cancelled = Code(.cancelled)
        /// A streamed body stopped moving: the other side sent or took nothing for the idle timeout.
        public static let stalled = Code(.stalled)
        /// The server answered with a non-2xx status (see `status` and `message`).
        public static let status = Code(.status)

        public var description: String { value.rawValue }
    }

    public let code: Code
    public let message: String
    /// The HTTP status, for `.status`.
    public let status: Int?

    public init(_ code: Code, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "HTTP \(code): \(message)" }
}
