import FerryFiles
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a job may leave in its work folder and logs: bytes on disk (and any single file), files and
/// folders, and folder depth. The unit walks the tree relative to open descriptors, so no tree can
/// hide from the count, and a result or a removal never meets a path it cannot handle.
struct OutputLimits: Sendable, Equatable {
    var bytes: UInt64
    var files: Int
    /// Folder levels below the work folder; the walk holds one descriptor per level.
    var depth: Int = OutputLimits.defaultDepth

    static let defaultDepth = 100

    /// Which limit a job's output went past.
    enum Exceeded: Sendable, Equatable {
        case bytes, files, depth
    }
}

/// What a job's files use, as one walk measured it.
struct OutputUsage: Sendable, Equatable {
    var allocatedBytes: UInt64 = 0
    var largestFile: UInt64 = 0
    /// Files and folders; the walk stops counting just past the limit.
    var entries = 0
    var deepest = 0

    /// Measures `folder` (walked) and `files` (the logs), stopping early once past the limits.
    static func measure(folder: String, files: [String], limits: OutputLimits) -> OutputUsage {
        var usage = OutputUsage()
        for file in files {
            var info = stat()
            if lstat(file, &info) == 0 { usage.add(info) }
        }
        _ = try? FileTree.walk(folder, maxDepth: limits.depth + 1) { entry in
            usage.entries += 1
            usage.deepest = max(usage.deepest, entry.depth)
            usage.add(entry.info)
            return usage.exceeded(limits) == nil ? .next : .stop
        }
        return usage
    }

    private mutating func add(_ info: stat) {
        allocatedBytes += UInt64(max(0, info.st_blocks)) * 512
        if info.st_mode & S_IFMT == S_IFREG { largestFile = max(largestFile, UInt64(max(0, info.st_size))) }
    }

    /// How long to wait before the next walk of a job's files: a second, or three times as long as
    /// the last walk took, so that a huge tree cannot keep a core busy.
    static func pause(after walk: Duration) -> Duration { max(.seconds(1), walk * 3) }

    /// The first limit this usage goes past, if any (a file that reached the byte limit counts: RLIMIT_FSIZE stopped it there).
    func exceeded(_ limits: OutputLimits) -> OutputLimits.Exceeded? {
        if allocatedBytes > limits.bytes || largestFile >= limits.bytes { return .bytes }
        if entries > limits.files { return .files }
        if deepest > limits.depth { return .depth }
        return nil
    }
}

/// Watches a running job and ends it early when it must stop: it measures the job's work folder and
/// logs against the output limits (once a second, or less often when a walk takes long) and looks for
/// the job's cancel marker; `stop(_:)` ends it at once (a cancel request from the Consumer). Ending
/// means SIGKILL to the job's process group and to its cgroup; the job's cgroup takes the rest when
/// the run is cleaned up. (Each single file is also capped by RLIMIT_FSIZE, so a fast writer cannot
/// fill the disk between two looks.)
final class RunWatcher: Sendable {
    enum StopReason: Sendable, Equatable {
        case output(OutputLimits.Exceeded)
        case canceled
    }

    let folder: String
    let logs: [String]
    let limits: OutputLimits
    let isCanceled: @Sendable () -> Bool
    /// Kills everything of the job at once (its cgroup), besides its process group.
    let killAll: @Sendable () -> Void
    private let reason = Mutex<StopReason?>(nil)
    private let pid = Atomic<pid_t>(0)

    init(folder: String, logs: [String], limits: OutputLimits, isCanceled: @escaping @Sendable () -> Bool = { false }, killAll: @escaping @Sendable () -> Void = {}) {
        self.folder = folder
        self.logs = logs
        self.limits = limits
        self.isCanceled = isCanceled
        self.killAll = killAll
    }

    /// Why the watcher stopped the job, if it did.
    var stopReason: StopReason? { reason.withLock { $0 } }

    /// Ends the job now (the first reason given is kept).
    func stop(_ why: StopReason) {
        reason.withLock { if $0 == nil { $0 = why } }
        let target = pid.load(ordering: .relaxed)
        if target > 0 { kill(-target, SIGKILL) }
        killAll()
    }

    /// Measures the job's files now (also once it ended, to catch what it wrote after the last look).
    func measure() -> OutputUsage {
        OutputUsage.measure(folder: folder, files: logs, limits: limits)
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
                var pause = Duration.seconds(1)
                while !Task.isCancelled {
                    try? await Task.sleep(for: pause)
                    if Task.isCancelled { break }
                    if isCanceled() {
                        stop(.canceled)
                        break
                    }
                    // The walk blocks: it runs on a thread of its own, and the next one waits (OutputUsage.pause).
                    let began = ContinuousClock.now
                    let usage = await BlockingWork.run { [self] in measure() }
                    pause = OutputUsage.pause(after: ContinuousClock.now - began)
                    if let exceeded = usage.exceeded(limits) {
                        stop(.output(exceeded))
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
}
