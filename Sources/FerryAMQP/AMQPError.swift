/// A failure of the broker connection, with what failed and, where possible, what to do about it.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; callers branch on it (reconnect, retry, give up).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case invalidURL = "invalid URL"
            case connectFailed = "cannot connect"
            case timedOut = "timed out"
            case authenticationFailed = "login refused"
            case connectionLost = "connection lost"
            case channelClosed = "channel closed by the broker"
            case nacked = "message refused by the broker"
            case returned = "message returned as unroutable"
            case consumerCanceled = "consumer canceled"
            case staleDelivery = "delivery belongs to a closed channel"
            case protocolError = "protocol error"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let invalidURL = Code(.invalidURL)
        public static let connectFailed = Code(.connectFailed)
        public static let timedOut = Code(.timedOut)
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The connection is gone: every later call fails with this too. Reconnect.
        public static let connectionLost = Code(.connectionLost)
        public static let channelClosed = Code(.channelClosed)
        public static let nacked = Code(.nacked)
        public static let returned = Code(.returned)
        public static let consumerCanceled = Code(.consumerCanceled)
        public static let staleDelivery = Code(.staleDelivery)
        public static let protocolError = Code(.protocolError)

        public var description: String { value.rawValue }
    }

    public let code: Code
    public let message: String
    /// The AMQP reply code when the broker sent one (404 NOT_FOUND, 406 PRECONDITION_FAILED, 320 CONNECTION_FORCED...).
    public let replyCode: Int?

    public init(_ code: Code, _ message: String, replyCode: Int? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    public var description: String { "AMQP \(code): \(message)" }

    /// True when the connection is unusable and the caller should open a new one.
    public var requiresReconnect: Bool {
        code == .connectionLost || code == .connectFailed || code == .timedOut
    }
}
