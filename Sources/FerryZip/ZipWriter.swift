import CZip
import Foundation

/// What `ZipWriter.archive` wrote.
public struct ZipArchiveSummary: Sendable, Equatable {
    public var files: Int
    public var directories: Int
    /// Size of the archive on disk.
    public var archiveBytes: UInt64
    /// Symlinks, FIFOs and other non-regular files that were left out, relative to the folder.
    public var skipped: [String]
}

/// Creates archives through libzip, streaming each file from disk while the archive is written.
public enum ZipWriter {
    /// Zips the contents of `folder` (its files and folders, empty ones included, relative to it) into
    /// `destination`. The archive is written to a temporary name beside it, flushed to disk, then renamed,
    /// so `destination` is either absent or complete. Symlinks and special files are left out, never
    /// followed: a job cannot smuggle other files into its result.
    @discardableResult
    public static func archive(folder: String, to destination: String) throws -> ZipArchiveSummary {
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
            try add(folder: folder, prefix: "", to: archive, summary: &summary)
        } catch {
            zip_discard(archive)
            unlink(temporary)
            throw error
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

    private static func add(folder: String, prefix: String, to archive: OpaquePointer, summary: inout ZipArchiveSummary) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw ZipError(.io, "cannot list \(folder): \(error.localizedDescription)")
        }
        for name in names {
            let path = folder + "/" + name
            let entryName = prefix + name
            var info = stat()
            guard lstat(path, &info) == 0 else { throw ZipError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let index = zip_dir_add(archive, entryName + "/", zip_flags_t(ZIP_FL_ENC_UTF_8))
                guard index >= 0 else { throw libraryError(archive, adding: entryName) }
                zip_file_set_external_attributes(archive, zip_uint64_t(index), 0, zip_uint8_t(ZIP_OPSYS_UNIX), (UInt32(S_IFDIR) | 0o755) << 16)
                summary.directories += 1
                try add(folder: path, prefix: entryName + "/", to: archive, summary: &summary)
            case S_IFREG:
                guard let source = zip_source_file(archive, path, 0, -1) else { throw libraryError(archive, adding: entryName) }
                let index = zip_file_add(archive, entryName, source, zip_flags_t(ZIP_FL_ENC_UTF_8))
                guard index >= 0 else {
                    zip_source_free(source)
                    throw libraryError(archive, adding: entryName)
                }
                let permissions = UInt32(info.st_mode) & 0o100 != 0 ? 0o755 : 0o644
                zip_file_set_external_attributes(archive, zip_uint64_t(index), 0, zip_uint8_t(ZIP_OPSYS_UNIX), (UInt32(S_IFREG) | UInt32(permissions)) << 16)
                zip_set_file_compression(archive, zip_uint64_t(index), ZIP_CM_DEFLATE, 0)
                summary.files += 1
            default:
                summary.skipped.append(entryName)
            }
        }
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
