import Foundation

/// Writes zip archives byte by byte, so tests can make the hostile ones that no zip tool would:
/// `../` names, symlinks, lying sizes, encrypted flags. Entries are stored (not compressed).
public struct RawZipBuilder {
    public struct Entry {
        public var name: String
        public var data: [UInt8]
        /// Unix mode including the file type (`0o100644` file, `0o120777` symlink, `0o040755` folder).
        public var mode: UInt32 = 0o100644
        /// The uncompressed size written in the headers; nil writes the true size.
        public var declaredSize: UInt32?
        public var encrypted = false

        public init(name: String, data: [UInt8], mode: UInt32 = 0o100644, declaredSize: UInt32? = nil, encrypted: Bool = false) {
            self.name = name
            self.data = data
            self.mode = mode
            self.declaredSize = declaredSize
            self.encrypted = encrypted
        }
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public mutating func file(_ name: String, _ text: String, mode: UInt32 = 0o100644) {
        entries.append(Entry(name: name, data: Array(text.utf8), mode: mode))
    }

    public mutating func directory(_ name: String) {
        entries.append(Entry(name: name.hasSuffix("/") ? name : name + "/", data: [], mode: 0o040755))
    }

    public mutating func symlink(_ name: String, to target: String) {
        entries.append(Entry(name: name, data: Array(target.utf8), mode: 0o120777))
    }

    public mutating func add(_ entry: Entry) {
        entries.append(entry)
    }

    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for entry in entries {
            let offset = UInt32(out.count)
            let name = Array(entry.name.utf8)
            let crc = CRC32.checksum(entry.data)
            let size = UInt32(entry.data.count)
            let declared = entry.declaredSize ?? size
            let flags: UInt16 = (entry.encrypted ? 1 : 0) | 0x0800  // bit 11: UTF-8 names
            out += le32(0x0403_4B50) + le16(20) + le16(flags) + le16(0) + le16(0) + le16(0x21)
            out += le32(crc) + le32(size) + le32(declared) + le16(UInt16(name.count)) + le16(0) + name + entry.data
            central += le32(0x0201_4B50) + le16(0x0314) + le16(20) + le16(flags) + le16(0) + le16(0) + le16(0x21)
            central += le32(crc) + le32(size) + le32(declared) + le16(UInt16(name.count)) + le16(0) + le16(0)
            central += le16(0) + le16(0) + le32(entry.mode << 16) + le32(offset) + name
        }
        let centralOffset = UInt32(out.count)
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(entries.count)) + le16(UInt16(entries.count))
        out += le32(UInt32(central.count)) + le32(centralOffset) + le16(0)
        return out
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    private func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    private func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
}

enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        (0..<8).reduce(UInt32(index)) { crc, _ in crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(~UInt32(0)) { crc, byte in table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    }
}
