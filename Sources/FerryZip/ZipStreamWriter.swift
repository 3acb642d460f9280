import Foundation

/// Writes a zip archive front to back, for sending as it is made (a response that starts at once
/// and never sits whole in memory or on disk). Entries are copied as their source archive stores
/// them (`ZipReader.openStored`), so their sizes and CRC are known before their header goes out and no data
/// descriptor is needed. Sizes, offsets and counts past the classic format's limits get ZIP64
/// records, which every current unzip tool reads. Names are UTF-8 (flag bit 11).
public struct ZipStreamWriter: Sendable {
    public enum Method: UInt16, Sendable {
        case stored = 0, deflated = 8
    }

    private var offset: UInt64 = 0
    private var directory: [UInt8] = []
    private var count: UInt64 = 0
    private let time: UInt16, date: UInt16

    public init(modified: Date = Date()) {
        var seconds = time_t(modified.timeIntervalSince1970), parts = tm()
        gmtime_r(&seconds, &parts)
        time = UInt16(parts.tm_hour << 11 | parts.tm_min << 5 | parts.tm_sec / 2)
        date = UInt16(max(0, parts.tm_year - 80) << 9 | (parts.tm_mon + 1) << 5 | parts.tm_mday)
    }

    /// The bytes of everything written so far.
    public var bytesWritten: UInt64 { offset }

    /// The header of a folder entry (`name` ends with `/`).
    public mutating func folder(_ name: String) -> [UInt8] {
        header(name: name.hasSuffix("/") ? name : name + "/", method: .stored, crc: 0, compressedSize: 0, size: 0, mode: 0o40755)
    }

    /// The header of a file whose `compressedSize` stored bytes the caller sends right after it.
    public mutating func file(_ name: String, method: Method, crc: UInt32, compressedSize: UInt64, size: UInt64) -> [UInt8] {
        let bytes = header(name: name, method: method, crc: crc, compressedSize: compressedSize, size: size, mode: 0o100644)
        offset += compressedSize
        return bytes
    }

    private mutating func header(name: String, method: Method, crc: UInt32, compressedSize: UInt64, size: UInt64, mode: UInt32) -> [UInt8] {
        let nameBytes = Array(name.utf8)
        let large = size >= 0xFFFF_FFFF || compressedSize >= 0xFFFF_FFFF
        let needed: UInt16 = large || offset >= 0xFFFF_FFFF ? 45 : 20
        var local: [UInt8] = []
        local.le32(0x0403_4b50); local.le16(needed); local.le16(0x0800); local.le16(method.rawValue)
        local.le16(time); local.le16(date); local.le32(crc)
        local.le32(large ? 0xFFFF_FFFF : UInt32(compressedSize)); local.le32(large ? 0xFFFF_FFFF : UInt32(size))
        local.le16(UInt16(nameBytes.count)); local.le16(large ? 20 : 0)
        local += nameBytes
        if large { local.le16(0x0001); local.le16(16); local.le64(size); local.le64(compressedSize) }

        // The central directory's record, with ZIP64 fields for whatever does not fit in 32 bits.
        var extra: [UInt8] = []
        if size >= 0xFFFF_FFFF { extra.le64(size) }
        if compressedSize >= 0xFFFF_FFFF { extra.le64(compressedSize) }
        if offset >= 0xFFFF_FFFF { extra.le64(offset) }
        var central: [UInt8] = []
        central.le32(0x0201_4b50); central.le16(3 << 8 | 45); central.le16(needed); central.le16(0x0800); central.le16(method.rawValue)
        central.le16(time); central.le16(date); central.le32(crc)
        central.le32(compressedSize >= 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(compressedSize))
        central.le32(size >= 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(size))
        central.le16(UInt16(nameBytes.count)); central.le16(extra.isEmpty ? 0 : UInt16(extra.count + 4)); central.le16(0)
        central.le16(0); central.le16(0); central.le32(mode << 16 | (mode & 0o40000 != 0 ? 0x10 : 0))
        central.le32(offset >= 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(offset))
        central += nameBytes
        if !extra.isEmpty { central.le16(0x0001); central.le16(UInt16(extra.count)); central += extra }
        directory += central
        count += 1
        offset += UInt64(local.count)
        return local
    }

    /// The central directory and end records; nothing may be written after them.
    public mutating func finish() -> [UInt8] {
        let start = offset, size = UInt64(directory.count)
        var bytes = directory
        directory = []
        let zip64 = count >= 0xFFFF || start >= 0xFFFF_FFFF || size >= 0xFFFF_FFFF
        if zip64 {
            let record = start + size
            bytes.le32(0x0606_4b50); bytes.le64(44); bytes.le16(3 << 8 | 45); bytes.le16(45); bytes.le32(0); bytes.le32(0)
            bytes.le64(count); bytes.le64(count); bytes.le64(size); bytes.le64(start)
            bytes.le32(0x0706_4b50); bytes.le32(0); bytes.le64(record); bytes.le32(1)
        }
        bytes.le32(0x0605_4b50); bytes.le16(0); bytes.le16(0)
        bytes.le16(zip64 ? 0xFFFF : UInt16(count)); bytes.le16(zip64 ? 0xFFFF : UInt16(count))
        bytes.le32(zip64 ? 0xFFFF_FFFF : UInt32(size)); bytes.le32(zip64 ? 0xFFFF_FFFF : UInt32(start)); bytes.le16(0)
        offset += UInt64(bytes.count)
        return bytes
    }
}

extension [UInt8] {
    fileprivate mutating func le16(_ value: UInt16) { append(UInt8(value & 0xFF)); append(UInt8(value >> 8)) }
    fileprivate mutating func le32(_ value: UInt32) { le16(UInt16(value & 0xFFFF)); le16(UInt16(value >> 16)) }
    fileprivate mutating func le64(_ value: UInt64) { le32(UInt32(value & 0xFFFF_FFFF)); le32(UInt32(value >> 32)) }
}
