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
                    if Self.usage(of: paths).allocated > limit {
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

    /// Bytes allocated on disk by the files under `paths`, and the size of the largest file (links
    /// are not followed), in one walk.
    static func usage(of paths: [String]) -> (allocated: UInt64, largestFile: UInt64) {
        var allocated: UInt64 = 0, largest: UInt64 = 0
        for path in paths {
            FileTree.walk(path) { _, info in
                allocated += UInt64(info.st_blocks) * 512
                largest = max(largest, UInt64(info.st_size))
            }
        }
        return (allocated, largest)
    }

    /// Whether the files under `paths` together, or one of them (RLIMIT_FSIZE stopped it there),
    /// reached `limit`.
    static func anyFile(in paths: [String], reaches limit: UInt64) -> Bool {
        let usage = usage(of: paths)
        return usage.largestFile >= limit || usage.allocated > limit
    }
}
