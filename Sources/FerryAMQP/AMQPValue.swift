import Foundation

/// An AMQP field table: queue arguments (`x-queue-type`, `x-delivery-limit`) and message headers.
public typealias AMQPTable = [String: AMQPValue]

/// A value in an AMQP field table.
public enum AMQPValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case timestamp(Date)
    case bytes([UInt8])
    case table(AMQPTable)
    case array([AMQPValue])
    case void

    /// The value as an integer, whatever integer width the broker chose (x-delivery-count arrives as a long).
    public var intValue: Int64? {
        if case .int(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        switch self {
        case .string(let value): value
        case .bytes(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}

extension AMQPValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
