import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small files of the unit's records, written whole and flushed before the step they record is taken.
enum DurableFile {
    /// Replaces the file: a temporary name, flushed, renamed; the unit's own (0600).
    static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".partial"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw failure(path) }
        let written = data.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else { throw failure(path) }
    }

    /// Creates the file only if it does not exist (one creator wins, whoever comes first), written
    /// whole and flushed; false when it existed. A file that could not be written whole is removed.
    static func create(_ data: Data, at path: String, permissions: mode_t = 0o600) throws -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, permissions)
        guard descriptor >= 0 else {
            if errno == EEXIST { return false }
            throw failure(path)
        }
        let written = data.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0 else {
            let error = failure(path)
            unlink(path)
            throw error
        }
        return true
    }

    /// Names the file, never the folder it is in (the message may reach a job's reason or a log).
    private static func failure(_ path: String) -> ChildRunError {
        ChildRunError(message: "cannot write \((path as NSString).lastPathComponent): \(String(cString: strerror(errno)))")
    }
}
