import CRabbitMQ
import Foundation

extension AMQPProperties {
    /// Copies the properties of a received message.
    init(_ properties: amqp_basic_properties_t) {
        let flags = properties._flags
        func has(_ flag: amqp_flags_t) -> Bool { flags & flag != 0 }
        self.init(
            contentType: has(FERRY_FLAG_CONTENT_TYPE) ? String(bytes: properties.content_type) : nil,
            messageID: has(FERRY_FLAG_MESSAGE_ID) ? String(bytes: properties.message_id) : nil,
            correlationID: has(FERRY_FLAG_CORRELATION_ID) ? String(bytes: properties.correlation_id) : nil,
            type: has(FERRY_FLAG_TYPE) ? String(bytes: properties.type) : nil,
            timestamp: has(FERRY_FLAG_TIMESTAMP) ? Date(timeIntervalSince1970: Double(properties.timestamp)) : nil,
            headers: has(FERRY_FLAG_HEADERS) ? AMQPValue.table(from: properties.headers) : [:],
            persistent: has(FERRY_FLAG_DELIVERY_MODE) && properties.delivery_mode == FERRY_DELIVERY_PERSISTENT
        )
    }

    /// The C form of these properties, with its strings and tables owned by `arena`.
    func cProperties(in arena: CArena) -> amqp_basic_properties_t {
        var properties = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if persistent {
            flags |= FERRY_FLAG_DELIVERY_MODE
            properties.delivery_mode = FERRY_DELIVERY_PERSISTENT
        }
        if let contentType {
            flags |= FERRY_FLAG_CONTENT_TYPE
            properties.content_type = arena.bytes(contentType)
        }
        if let messageID {
            flags |= FERRY_FLAG_MESSAGE_ID
            properties.message_id = arena.bytes(messageID)
        }
        if let correlationID {
            flags |= FERRY_FLAG_CORRELATION_ID
            properties.correlation_id = arena.bytes(correlationID)
        }
        if let type {
            flags |= FERRY_FLAG_TYPE
            properties.type = arena.bytes(type)
        }
        if let timestamp {
            flags |= FERRY_FLAG_TIMESTAMP
            properties.timestamp = UInt64(max(0, timestamp.timeIntervalSince1970))
        }
        if !headers.isEmpty {
            flags |= FERRY_FLAG_HEADERS
            properties.headers = arena.table(headers)
        }
        properties._flags = flags
        return properties
    }
}
