import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on a file, taken without ever blocking a thread: the unit tries once a
/// second (`LOCK_NB`) and sleeps in between, so waiting can be cancelled and has a limit.
final class FileLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Takes the lock, calling `onWait` once if another holder makes it wait. Throws
    /// `CancellationError` when the task is cancelled while waiting, and `FileLockTimeout` after `limit`.
    static func acquire(_ path: String, limit: Duration? = nil, poll: Duration = .seconds(1), onWait: () async -> Void = {}) async throws -> FileLock {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw EnvironmentError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        let deadline = limit.map { ContinuousClock.now + $0 }
        var waited = false
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let message = String(cString: strerror(errno))
                close(descriptor)
                throw EnvironmentError(message: "cannot lock \(path): \(message)")
            }
            if let deadline, ContinuousClock.now >= deadline {
                close(descriptor)
                throw FileLockTimeout(path: path, limit: limit!)
            }
            if !waited {
                waited = true
                await onWait()
            }
            do {
                try await Task.sleep(for: poll)
            } catch {
                close(descriptor)
                throw error
            }
        }
        return FileLock(descriptor: descriptor)
    }

    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// Another holder kept a lock longer than the waiter's limit (Ferry's trouble: the job is retried).
struct FileLockTimeout: Error, CustomStringConvertible {
    var path: String
    var limit: Duration
    var description: String { "another run held the lock on \((path as NSString).lastPathComponent) for more than \(limit)" }
}

/// One run of a job at a time, across every unit on the shared volume: a unit holds an exclusive
/// `flock` on `jobs/<job>/run.lock` for as long as it runs the job. The kernel releases it when the
/// unit's process ends however it ends (also SIGKILL), so a job whose unit died can be taken over,
/// while a redelivered copy of a job that another unit still runs waits until that run ends (and then
/// finds its finished manifest instead of running it again).
enum RunLock {
    /// Takes the lock, waiting (once a second, `onWait` called once) while another run holds it;
    /// a run lasts at most its time limit, and the wait ends when the task is cancelled.
    static func acquire(jobDirectory: String, owner: VolumeOwner? = nil, onWait: () async -> Void = {}) async throws -> FileLock {
        try FileManager.default.createDirectory(atPath: jobDirectory, withIntermediateDirectories: true)
        // Others pass through (the Backend reads the logs) and can list nothing here; the volume's
        // owner (the Backend) may remove what is in it.
        chmod(jobDirectory, 0o711)
        try owner?.adopt(jobDirectory)
        return try await FileLock.acquire(jobDirectory + "/run.lock", onWait: onWait)
    }
}
