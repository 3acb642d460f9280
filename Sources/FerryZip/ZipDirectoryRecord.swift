import Foundation

/// What an archive's end-of-central-directory record says, read from the last bytes of the file
/// before libzip parses anything: libzip reads the whole central directory into memory when it
/// opens an archive, so an upload that declares twenty million entries must be refused first.
public struct ZipDirectoryRecord: Sendable, Equatable {
    /// Entries the archive declares.
    public var entries: UInt64
    /// Bytes of its central directory.
    public var directoryBytes: UInt64

    /// The record of the archive at `path`, with the zip64 record when the classic one overflows;
    /// nil when there is none (not a zip; libzip says so in its own words).
    public static func read(path: String) throws -> ZipDirectoryRecord? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ZipError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ZipError(.io, "cannot inspect \(path)") }
        let size = UInt64(max(0, info.st_size))
        let tailLength = min(size, 22 + 65_535)
        let tail = try bytes(descriptor, at: size - tailLength, count: Int(tailLength))
        guard tail.count >= 22 else { return nil }
        // The record is 22 bytes plus a comment of up to 64 KiB; the last signature wins.
        guard let start = stride(from: tail.count - 22, through: 0, by: -1).first(where: { tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06 }) else {
            return nil
        }
        var record = ZipDirectoryRecord(entries: UInt64(little16(tail, start + 10)), directoryBytes: UInt64(little32(tail, start + 12)))
        let overflows = record.entries == 0xFFFF || record.directoryBytes == 0xFFFF_FFFF
        let locator = start - 20
        if overflows, locator >= 0, little32(tail, locator) == 0x0706_4B50 {
            let offset = little64(tail, locator + 8)
            if offset < size, size - offset >= 56 {
                let zip64 = try bytes(descriptor, at: offset, count: 56)
                if zip64.count == 56, little32(zip64, 0) == 0x0606_4B50 {
                    record = ZipDirectoryRecord(entries: little64(zip64, 32), directoryBytes: little64(zip64, 40))
                }
            }
        }
        return record
    }

    private static func bytes(_ descriptor: Int32, at offset: UInt64, count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
        guard read >= 0 else { throw ZipError(.io, "cannot read the archive: \(String(cString: strerror(errno)))") }
        return Array(buffer.prefix(read))
    }

    private static func little16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    private static func little32(_ bytes: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
    private static func little64(_ bytes: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
}
