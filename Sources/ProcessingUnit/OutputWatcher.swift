import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ends a job whose files grow past the output limit while it runs: every second it adds up the
/// disk space of the job's work folder and logs, and kills the job's process group when the total
/// is over the limit. (Each single file is also capped by RLIMIT_FSIZE, so a fast writer cannot
/// fill the disk between two looks.)
final class OutputWatcher: Sendable {
    let paths: [String]
    let limit: UInt64
    private let state = Mutex(false)
    private let pid = Atomic<pid_t>(0)

    init(paths: [String], limit: UInt64) {
        self.paths = paths
        self.limit = limit
    }

    /// Whether the watcher stopped the job.
    var exceeded: Bool { state.withLock { $0 } }

    func watch(while run: ChildRun) async throws -> ChildRun.Outcome {
        var child = run
        child.onStart = { [self] started in pid.store(started, ordering: .relaxed) }
        let started = child
        return try await withThrowingTaskGroup(of: ChildRun.Outcome?.self) { group in
            group.addTask { try await started.run() }
            group.addTask { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    if Self.diskUsage(of: paths) > limit {
                        state.withLock { $0 = true }
                        let target = pid.load(ordering: .relaxed)
                        if target > 0 { kill(-target, SIGKILL) }
                        break
                    }
                }
                return nil
            }
            var outcome: ChildRun.Outcome?
            while let next = try await group.next() {
                if let next {
                    outcome = next
                    group.cancelAll()
                }
            }
            return outcome!
        }
    }

    /// Bytes allocated on disk by the files under `paths` (links are not followed).
    static func diskUsage(of paths: [String]) -> UInt64 {
        var total: UInt64 = 0
        forEachFile(in: paths) { info in total += UInt64(info.st_blocks) * 512 }
        return total
    }

    /// Whether a file under `paths` is as large as `limit` (RLIMIT_FSIZE stopped it there).
    static func anyFile(in paths: [String], reaches limit: UInt64) -> Bool {
        var found = false
        forEachFile(in: paths) { info in if UInt64(info.st_size) >= limit { found = true } }
        return found || diskUsage(of: paths) > limit
    }

    private static func forEachFile(in paths: [String], _ body: (stat) -> Void) {
        for path in paths { FileTree.walk(path) { _, info in body(info) } }
    }
}
