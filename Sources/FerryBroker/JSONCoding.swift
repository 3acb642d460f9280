import FerryContracts
import Foundation

/// The one JSON encoding of Ferry's messages: FerryDate dates, sorted keys (stable bodies).
public enum FerryJSON {
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try JSONEncoder.ferry([.sortedKeys]).encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Sequence<UInt8>) throws -> T {
        try JSONDecoder.ferry().decode(T.self, from: Data(bytes))
    }
}
