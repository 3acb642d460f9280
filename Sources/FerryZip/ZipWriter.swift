import CZip
import FerryFiles
import Foundation

/// What `ZipWriter.archive` wrote.
public struct ZipArchiveSummary: Sendable, Equatable {
    public var files: Int
    public var directories: Int
    /// Size of the archive on disk.
    public var archiveBytes: UInt64
    /// What was left out, relative to the folder: symlinks, FIFOs and other non-regular files, and
    /// entries beyond the limits (the first 100 of them; `skippedCount` counts all).
    public var skipped: [String]
    public var skippedCount: Int = 0

    mutating func skip(_ path: String) {
        skippedCount += 1
        if skipped.count < 100 { skipped.append(path) }
    }
}

/// How much of a folder `ZipWriter.archive` takes: a job's output may hold more than a result should.
public struct ZipArchiveLimits: Sendable {
    /// Entries (files and folders) at most; the rest are left out.
    public var maxEntries: Int
    /// Folder levels at most; what lies deeper is left out.
    public var maxDepth: Int

    public init(maxEntries: Int = .max, maxDepth: Int = .max) {
        self.maxEntries = maxEntries
        self.maxDepth = maxDepth
    }
}

/// Creates archives through libzip, streaming each file from disk while the archive is written.
public enum ZipWriter {
    /// Zips the contents of `folder` (its files and folders, empty ones included, relative to it) into
    /// `destination`. The archive is written to a temporary name beside it, flushed to disk, then renamed,
    /// so `destination` is either absent or complete. Symlinks and special files are left out, never
    /// followed: the folder is walked relative to open descriptors and every file is opened with
    /// O_NOFOLLOW at each step of its path (a job cannot smuggle other files into its result, and a
    /// tree deeper than PATH_MAX is no obstacle). Entries beyond `limits` are left out too.
    @discardableResult
    public static func archive(folder: String, to destination: String, limits: ZipArchiveLimits = .init()) throws -> ZipArchiveSummary {
        let root = open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { throw ZipError(.io, "cannot open the folder \(folder): \(String(cString: strerror(errno)))") }
        let rootFolder = OpenFolder(descriptor: root)
        let directory = (destination as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/." + (destination as NSString).lastPathComponent + ".partial-\(UUID().uuidString)"
        var code: Int32 = 0
        guard let archive = zip_open(temporary, ZIP_CREATE | ZIP_EXCL, &code) else {
            var error = zip_error_t()
            zip_error_init_with_code(&error, code)
            defer { zip_error_fini(&error) }
            throw ZipError(.io, "cannot create \(temporary): \(String(cString: zip_error_strerror(&error)))")
        }
        var summary = ZipArchiveSummary(files: 0, directories: 0, archiveBytes: 0, skipped: [])
        do {
            try FileTree.walk(folder, maxDepth: limits.maxDepth == .max ? .max : limits.maxDepth + 1) { entry in
                guard entry.depth <= limits.maxDepth, summary.files + summary.directories < limits.maxEntries else {
                    summary.skip(entry.relativePath)
                    return .skipChildren
                }
                try add(entry, root: rootFolder, to: archive, summary: &summary)
                return .next
            }
        } catch {
            zip_discard(archive)
            unlink(temporary)
            if let error = error as? ZipError { throw error }
            throw ZipError(.io, "cannot read \(folder): \(error)")
        }
        if summary.files + summary.directories == 0 {
            zip_discard(archive)  // libzip writes no file for an empty archive
            try writeEmptyArchive(temporary)
        } else if zip_close(archive) != 0 {
            let message = String(cString: zip_strerror(archive))
            zip_discard(archive)
            unlink(temporary)
            throw ZipError(.io, "writing \(destination) failed: \(message)")
        }
        try flushToDisk(temporary)
        guard rename(temporary, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ZipError(.io, "cannot move the archive to \(destination): \(reason)")
        }
        summary.archiveBytes = UInt64((try? FileManager.default.attributesOfItem(atPath: destination)[.size] as? NSNumber)??.uint64Value ?? 0)
        return summary
    }

    private static func add(_ entry: FileTree.Entry, root: OpenFolder, to archive: OpaquePointer, summary: inout ZipArchiveSummary) throws {
        // The entry's name is the bytes of its path; libzip marks it UTF-8 when it is.
        let name = Array(entry.names.joined(separator: [0x2F]))
        switch entry.info.st_mode & S_IFMT {
        case S_IFDIR:
            let index = withEntryName(name + [0x2F]) { zip_dir_add(archive, $0, zip_flags_t(ZIP_FL_ENC_GUESS)) }
            guard index >= 0 else { throw libraryError(archive, adding: entry.relativePath) }
            zip_file_set_external_attributes(archive, zip_uint64_t(index), 0, zip_uint8_t(ZIP_OPSYS_UNIX), (UInt32(S_IFDIR) | 0o755) << 16)
            summary.directories += 1
        case S_IFREG:
            let file = FileSource(root: root, names: entry.names, info: entry.info)
            let userData = Unmanaged.passRetained(file).toOpaque()
            guard let source = zip_source_function(archive, FileSource.callback, userData) else {
                Unmanaged<FileSource>.fromOpaque(userData).release()
                throw libraryError(archive, adding: entry.relativePath)
            }
            let index = withEntryName(name) { zip_file_add(archive, $0, source, zip_flags_t(ZIP_FL_ENC_GUESS)) }
            guard index >= 0 else {
                zip_source_free(source)
                throw libraryError(archive, adding: entry.relativePath)
            }
            let permissions = UInt32(entry.info.st_mode) & 0o100 != 0 ? 0o755 : 0o644
            zip_file_set_external_attributes(archive, zip_uint64_t(index), 0, zip_uint8_t(ZIP_OPSYS_UNIX), (UInt32(S_IFREG) | UInt32(permissions)) << 16)
            zip_set_file_compression(archive, zip_uint64_t(index), ZIP_CM_DEFLATE, 0)
            summary.files += 1
        default:
            summary.skip(entry.relativePath)
        }
    }

    private static func withEntryName<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (name + [0]).withUnsafeBufferPointer { bytes in bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }

    private static func libraryError(_ archive: OpaquePointer, adding name: String) -> ZipError {
        ZipError(.library, "cannot add \(name): \(String(cString: zip_strerror(archive)))")
    }

    /// The 22-byte end-of-central-directory record of an archive with no entries.
    private static func writeEmptyArchive(_ path: String) throws {
        let record: [UInt8] = [0x50, 0x4B, 0x05, 0x06] + [UInt8](repeating: 0, count: 18)
        guard FileManager.default.createFile(atPath: path, contents: Data(record)) else {
            throw ZipError(.io, "cannot write \(path)")
        }
    }

    /// fsync, so that a result reported as done survives a power cut.
    private static func flushToDisk(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ZipError(.io, "cannot reopen \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw ZipError(.io, "cannot flush \(path): \(String(cString: strerror(errno)))") }
    }
}
