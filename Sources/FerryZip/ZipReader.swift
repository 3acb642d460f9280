import CZip
import Foundation

/// Reads an archive through libzip. The entry list comes from the central directory, without
/// extracting anything; extraction streams each entry to disk in fixed-size chunks, so memory stays
/// bounded whatever the sizes. libzip calls block: use a reader from a thread pool, one thread at a
/// time (it may move between the pool's threads, as a streamed download does; it is never shared).
public final class ZipReader: @unchecked Sendable {
    /// Bytes read from an entry per call; the whole of what extraction keeps in memory.
    static let chunkSize = 64 * 1024

    private var archive: OpaquePointer?
    public let path: String
    public let entries: [ZipEntry]

    /// Opens `path` and reads its central directory, with libzip's consistency checks on. With
    /// `maxEntries`, an archive that declares more entries (or a central directory larger than so
    /// many entries need) is refused from its end record, before libzip reads the directory.
    public init(path: String, maxEntries: Int? = nil) throws {
        if let maxEntries, let record = try ZipDirectoryRecord.read(path: path) {
            guard record.entries <= UInt64(maxEntries) else {
                throw ZipError(.limitExceeded, "the archive has \(record.entries) entries; at most \(maxEntries) are allowed")
            }
            // 46 bytes of header per entry, and room for long names and extra fields.
            let directoryLimit = UInt64(maxEntries) * 1_100 + 65_536
            guard record.directoryBytes <= directoryLimit else {
                throw ZipError(.limitExceeded, "the archive's directory takes \(record.directoryBytes >> 20) MiB, more than \(maxEntries) entries need")
            }
        }
        var code: Int32 = 0
        // Without ZIP_CHECKCONS: it refuses what libarchive's tools (GNOME Files, bsdtar) write, which
        // Info-ZIP and Python read without complaint. What matters is checked where it matters: the
        // real bytes of every entry against its declared size and CRC while it is extracted.
        guard let archive = zip_open(path, ZIP_RDONLY, &code) else {
            throw Self.openError(code: code, path: path)
        }
        self.archive = archive
        self.path = path
        do {
            self.entries = try Self.readEntries(archive)
        } catch {
            zip_discard(archive)
            throw error
        }
    }

    deinit {
        if let archive { zip_discard(archive) }
    }

    /// Releases the archive; the reader cannot be used afterwards.
    public func close() {
        if let archive { zip_discard(archive) }
        archive = nil
    }

    /// Streams one regular file entry to `destination`, which must not exist yet (and is never
    /// followed if it is a symlink). Stops with `sizeMismatch` as soon as the entry yields more bytes
    /// than it declares, and with `limitExceeded` past `maxBytes`; a partial file is removed.
    /// Returns the number of bytes written.
    @discardableResult
    public func extract(_ entry: ZipEntry, to destination: String, maxBytes: UInt64 = .max, permissions: mode_t = 0o644) throws -> UInt64 {
        guard let archive else { throw ZipError(.io, "the archive \(path) was closed") }
        guard entry.kind == .file else {
            throw ZipError(.notRegularFile, "\(entry.name) is not a regular file and cannot be extracted")
        }
        guard !entry.isEncrypted else {
            throw ZipError(.encrypted, "\(entry.name) is encrypted; zip the project again without a password")
        }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
        guard output >= 0 else {
            throw ZipError(.io, "cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        var finished = false
        defer {
            Glibc.close(output)
            if !finished { unlink(destination) }
        }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), 0) else {
            throw ZipError(.corrupt, "cannot read \(entry.name): \(String(cString: zip_strerror(archive)))")
        }
        defer { zip_fclose(file) }

        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var written: UInt64 = 0
        while true {
            let count = zip_fread(file, buffer, zip_uint64_t(Self.chunkSize))
            if count == 0 { break }
            guard count > 0 else {
                throw ZipError(.corrupt, "\(entry.name) cannot be decompressed: \(String(cString: zip_file_strerror(file))); the archive is damaged")
            }
            written += UInt64(count)
            if written > entry.size {
                throw ZipError(.sizeMismatch, "\(entry.name) declares \(entry.size) bytes but holds more; the archive was tampered with or is damaged")
            }
            if written > maxBytes {
                throw ZipError(.limitExceeded, "\(entry.name) is larger than the limit of \(maxBytes) bytes")
            }
            try Self.writeAll(output, buffer, count: Int(count), destination: destination)
        }
        finished = true
        return written
    }

    private static func writeAll(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, count: Int, destination: String) throws {
        var offset = 0
        while offset < count {
            let result = write(descriptor, buffer + offset, count - offset)
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                throw ZipError(.io, "writing \(destination) failed: \(String(cString: strerror(errno)))")
            }
            offset += result
        }
    }

    private static func readEntries(_ archive: OpaquePointer) throws -> [ZipEntry] {
        let count = zip_get_num_entries(archive, 0)
        guard count >= 0 else { throw ZipError(.corrupt, "cannot count the entries: \(String(cString: zip_strerror(archive)))") }
        var entries: [ZipEntry] = []
        entries.reserveCapacity(Int(count))
        for index in 0..<zip_uint64_t(count) {
            var stat = zip_stat_t()
            guard zip_stat_index(archive, index, 0, &stat) == 0, let namePointer = stat.name else {
                throw ZipError(.corrupt, "entry \(index) is unreadable: \(String(cString: zip_strerror(archive)))")
            }
            var system: zip_uint8_t = 0
            var attributes: zip_uint32_t = 0
            zip_file_get_external_attributes(archive, index, 0, &system, &attributes)
            let name = String(cString: namePointer)
            let unixMode: UInt32? = zip_uint32_t(system) == ZIP_OPSYS_UNIX && attributes >> 16 != 0 ? attributes >> 16 : nil
            entries.append(ZipEntry(
                index: Int(index),
                name: name,
                kind: kind(name: name, unixMode: unixMode, msdosAttributes: attributes),
                size: stat.size,
                compressedSize: stat.comp_size,
                compression: stat.comp_method == ZIP_CM_STORE ? .stored : stat.comp_method == ZIP_CM_DEFLATE ? .deflated : .other(Int32(stat.comp_method)),
                isEncrypted: stat.encryption_method != ZIP_EM_NONE,
                permissions: unixMode.map { $0 & 0o7777 }
            ))
        }
        return entries
    }

    private static func kind(name: String, unixMode: UInt32?, msdosAttributes: UInt32) -> ZipEntry.Kind {
        if let unixMode {
            switch unixMode & UInt32(S_IFMT) {
            case UInt32(S_IFDIR): return .directory
            case UInt32(S_IFLNK): return .symlink
            case UInt32(S_IFREG), 0: break
            default: return .other
            }
        }
        // MS-DOS directory attribute (0x10) or the trailing slash every zip tool writes.
        if name.hasSuffix("/") || msdosAttributes & 0x10 != 0 && unixMode == nil { return .directory }
        return .file
    }

    private static func openError(code: Int32, path: String) -> ZipError {
        var error = zip_error_t()
        zip_error_init_with_code(&error, code)
        defer { zip_error_fini(&error) }
        let detail = String(cString: zip_error_strerror(&error))
        switch code {
        case ZIP_ER_NOZIP:
            return ZipError(.notAZip, "\(path) is not a zip archive", detail: "it is not a zip archive")
        case ZIP_ER_INCONS, ZIP_ER_EOF, ZIP_ER_CRC, ZIP_ER_SEEK:
            return ZipError(.corrupt, "\(path) is damaged or truncated (\(detail)); zip the project again", detail: detail)
        case ZIP_ER_NOENT, ZIP_ER_OPEN, ZIP_ER_READ:
            return ZipError(.io, "cannot open \(path): \(detail)")
        default:
            return ZipError(.library, "cannot open \(path): \(detail)")
        }
    }
}

extension ZipReader {
    /// The first `maxBytes` of a regular file entry (a preview), and whether it holds more; never
    /// reads further than that, whatever the entry declares.
    public func prefix(of entry: ZipEntry, maxBytes: Int) throws -> (bytes: [UInt8], truncated: Bool) {
        guard let archive else { throw ZipError(.io, "the archive \(path) was closed") }
        guard entry.kind == .file else { throw ZipError(.notRegularFile, "\(entry.name) is not a regular file") }
        guard !entry.isEncrypted else { throw ZipError(.encrypted, "\(entry.name) is encrypted") }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), 0) else {
            throw ZipError(.corrupt, "cannot read \(entry.name): \(String(cString: zip_strerror(archive)))")
        }
        defer { zip_fclose(file) }
        // One byte more than asked tells whether there is more.
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { zip_fread(file, $0.baseAddress! + filled, zip_uint64_t($0.count - filled)) }
            if count == 0 { break }
            guard count > 0 else {
                throw ZipError(.corrupt, "\(entry.name) cannot be decompressed: \(String(cString: zip_file_strerror(file))); the archive is damaged")
            }
            filled += Int(count)
        }
        let truncated = filled > maxBytes
        return (Array(bytes.prefix(min(filled, maxBytes))), truncated)
    }

    /// Reads a small entry (a requirements file) into memory, with the same size checks as `extract`.
    public func contents(of entry: ZipEntry, maxBytes: Int) throws -> [UInt8] {
        let temporary = NSTemporaryDirectory() + "ferry-entry-\(UUID().uuidString)"
        defer { unlink(temporary) }
        try extract(entry, to: temporary, maxBytes: UInt64(maxBytes), permissions: 0o600)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: temporary)))
    }
}

extension ZipReader {
    /// A regular file entry's bytes as the archive stores them (still compressed) with its CRC, for
    /// copying it into another archive without decompressing and compressing it again.
    public func openStored(_ entry: ZipEntry) throws -> (bytes: EntryStream, crc: UInt32) {
        guard let archive else { throw ZipError(.io, "the archive \(path) was closed") }
        guard entry.kind == .file, !entry.isEncrypted else { throw ZipError(.notRegularFile, "\(entry.name) is not a plain file") }
        var stat = zip_stat_t()
        guard zip_stat_index(archive, zip_uint64_t(entry.index), 0, &stat) == 0, stat.valid & UInt64(ZIP_STAT_CRC) != 0 else {
            throw ZipError(.corrupt, "cannot read \(entry.name): \(String(cString: zip_strerror(archive)))")
        }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), zip_flags_t(ZIP_FL_COMPRESSED)) else {
            throw ZipError(.corrupt, "cannot read \(entry.name): \(String(cString: zip_strerror(archive)))")
        }
        return (EntryStream(reader: self, file: file, remaining: entry.compressedSize), stat.crc)
    }

    /// A regular file entry's contents, decompressed: exactly the size its directory declares, in
    /// chunks, for serving one file of an archive of any size without unpacking it.
    public func openContents(_ entry: ZipEntry) throws -> EntryStream {
        guard let archive else { throw ZipError(.io, "the archive \(path) was closed") }
        guard entry.kind == .file else { throw ZipError(.notRegularFile, "\(entry.name) is not a regular file") }
        guard !entry.isEncrypted else { throw ZipError(.encrypted, "\(entry.name) is encrypted") }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), 0) else {
            throw ZipError(.corrupt, "cannot read \(entry.name): \(String(cString: zip_strerror(archive)))")
        }
        return EntryStream(reader: self, file: file, remaining: entry.size)
    }
}

/// One entry's bytes (as stored, or decompressed), read in chunks; keeps its archive open until
/// closed, so close it before its reader. Like the reader, to be used from one thread at a time (it
/// moves between pool threads, never shared).
public final class EntryStream: @unchecked Sendable {
    private let reader: ZipReader
    private var file: OpaquePointer?
    private var remaining: UInt64

    init(reader: ZipReader, file: OpaquePointer, remaining: UInt64) {
        self.reader = reader
        self.file = file
        self.remaining = remaining
    }

    deinit { close() }

    /// The next at most `maxBytes`; empty at the end. Stops with `corrupt` when the entry yields fewer
    /// bytes than its directory declares (the copy or download would not match the size already sent).
    public func read(maxBytes: Int = 256 << 10) throws -> [UInt8] {
        guard let file, remaining > 0 else { return [] }
        let count = Int(min(UInt64(maxBytes), remaining))
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let read = bytes.withUnsafeMutableBytes { zip_fread(file, $0.baseAddress! + filled, zip_uint64_t(count - filled)) }
            guard read > 0 else { throw ZipError(.corrupt, "the archive \(reader.path) ends inside an entry") }
            filled += Int(read)
        }
        remaining -= UInt64(count)
        return bytes
    }

    public func close() {
        if let file { zip_fclose(file) }
        file = nil
    }
}
