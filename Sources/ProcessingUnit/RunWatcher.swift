import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Watches a running job and ends it early when it must stop: every second it adds up the disk space
/// of the job's work folder and logs (over the output limit: stopped) and looks for the job's cancel
/// marker; `stop(_:)` ends it at once (a cancel request from the Consumer). Ending means SIGKILL to
/// the job's process group; the job's cgroup takes the rest when the run is cleaned up. (Each single
/// file is also capped by RLIMIT_FSIZE, so a fast writer cannot fill the disk between two looks.)
final class RunWatcher: Sendable {
    enum StopReason: Sendable, Equatable {
        case outputLimit
        case canceled
    }

    let paths: [String]
    let limit: UInt64
    let isCanceled: @Sendable () -> Bool
    private let reason = Mutex<StopReason?>(nil)
    private let pid = Atomic<pid_t>(0)

    init(paths: [String], limit: UInt64, isCanceled: @escaping @Sendable () -> Bool = { false }) {
        self.paths = paths
        self.limit = limit
        self.isCanceled = isCanceled
    }

    /// Why the watcher stopped the job, if it did.
    var stopReason: StopReason? { reason.withLock { $0 } }

    /// Ends the job now (the first reason given is kept).
    func stop(_ why: StopReason) {
        reason.withLock { if $0 == nil { $0 = why } }
        let target = pid.load(ordering: .relaxed)
        if target > 0 { kill(-target, SIGKILL) }
    }

    func watch(while run: ChildRun) async throws -> ChildRun.Outcome {
        var child = run
        child.onStart = { [self] started in
            pid.store(started, ordering: .relaxed)
            if let stopReason { stop(stopReason) }  // stopped before the process existed
        }
        let started = child
        return try await withThrowingTaskGroup(of: ChildRun.Outcome?.self) { group in
            group.addTask { try await started.run() }
            group.addTask { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    if isCanceled() {
                        stop(.canceled)
                        break
                    }
                    if Self.usage(of: paths).allocated > limit {
                        stop(.outputLimit)
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
