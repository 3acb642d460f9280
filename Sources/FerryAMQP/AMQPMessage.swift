import Foundation

/// The properties Ferry sets and reads on a message. Messages are persistent unless said otherwise.
public struct AMQPProperties: Sendable, Equatable {
    public var contentType: String?
    public var messageID: String?
    public var correlationID: String?
    public var type: String?
    public var timestamp: Date?
    public var headers: AMQPTable
    /// Persistent messages (delivery mode 2) survive a broker restart in a durable queue.
    public var persistent: Bool

    public init(
        contentType: String? = nil, messageID: String? = nil, correlationID: String? = nil,
        type: String? = nil, timestamp: Date? = nil, headers: AMQPTable = [:], persistent: Bool = true
    ) {
        self.contentType = contentType
        self.messageID = messageID
        self.correlationID = correlationID
        self.type = type
        self.timestamp = timestamp
        self.headers = headers
        self.persistent = persistent
    }
}

/// One message handed to a consumer. Acknowledge it with the connection that delivered it, once its
/// effect is durable; if that connection is lost first, the broker delivers it again.
public struct AMQPDelivery: Sendable {
    public var body: [UInt8]
    public var properties: AMQPProperties
    public var deliveryTag: UInt64
    /// True when the broker delivered this message before and it was not acknowledged.
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    public var consumerTag: String
    /// Identifies the channel incarnation; an ack after the channel was reopened would hit the wrong message.
    let channelGeneration: Int

    /// How many times a quorum queue delivered this message before (`x-delivery-count`), 0 the first time.
    public var deliveryCount: Int {
        Int(properties.headers["x-delivery-count"]?.intValue ?? 0)
    }
}

/// What the broker says about a queue when it is declared.
public struct AMQPQueueState: Sendable, Equatable {
    public var name: String
    /// Messages ready for delivery (not counting unacknowledged ones).
    public var messageCount: Int
    public var consumerCount: Int
}

/// Exchange types Ferry uses.
public enum AMQPExchangeType: String, Sendable {
    case direct, fanout, topic, headers
}
