import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One run of a job at a time, across every unit on the shared volume: a unit holds an exclusive
/// `flock` on `jobs/<job>/run.lock` for as long as it runs the job. The kernel releases it when the
/// unit's process ends however it ends (also SIGKILL), so a job whose unit died can be taken over,
/// while a redelivered copy of a job that another unit still runs waits until that run ends (and then
/// finds its finished manifest instead of running it again).
final class RunLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Takes the lock, waiting (once a second, `onWait` called once) while another run holds it.
    /// Throws CancellationError when the task is cancelled while waiting.
    static func acquire(jobDirectory: String, onWait: () async -> Void = {}) async throws -> RunLock {
        try FileManager.default.createDirectory(atPath: jobDirectory, withIntermediateDirectories: true)
        // The job user passes through to its work folder, and can list or read nothing here.
        chmod(jobDirectory, 0o711)
        let path = jobDirectory + "/run.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ChildRunError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        var waited = false
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let message = String(cString: strerror(errno))
                close(descriptor)
                throw ChildRunError(message: "cannot lock \(path): \(message)")
            }
            if !waited {
                waited = true
                await onWait()
            }
            do {
                try await Task.sleep(for: .seconds(1))
            } catch {
                close(descriptor)
                throw error
            }
        }
        return RunLock(descriptor: descriptor)
    }

    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
