import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion without blocking the cooperative pool. The child is spawned as the
/// leader of a new process group, so `kill(-pid)` reaches everything it started: on a timeout, and
/// right after it exits, so that nothing it left behind keeps running. Completion is the exit of the
/// program itself (waitpid on its pid), not of the processes it left in the background.
struct ChildRun {
    struct Outcome: Sendable {
        var exitCode: Int32
        /// The signal that ended the process, if one did.
        var signal: Int32?
        var timedOut: Bool
        /// Peak resident memory of the largest process among it and the children it waited for.
        var maxResidentBytes: UInt64 = 0
        /// CPU seconds (user + system) of it and the children it waited for.
        var cpuSeconds: Double = 0
    }

    var executable: String
    var arguments: [String]
    /// The working directory; nil keeps the unit's (a sandbox sets its own).
    var directory: String?
    var environment: [String: String]
    var standardOutput: String
    var standardError: String
    var timeout: Duration?
    /// Called with the pid (also the process group) as soon as the program started.
    var onStart: (@Sendable (pid_t) -> Void)?
    /// Bytes the program can read from descriptors 3, 4, …, in this order (the sandbox's seccomp
    /// filter), each from a pipe of its own; at most 64 KiB each (what a pipe holds without a reader).
    /// Nothing else of the unit's passes: every other descriptor is closed before the program runs.
    var passing: [[UInt8]] = []

    /// Runs the program to its end and returns how it ended. When the task is cancelled, the program
    /// and everything it started are killed, and `run` throws `CancellationError` once the program is
    /// gone: a cancelled run is never reported as an exit, so half-done work is never taken as done.
    func run() async throws -> Outcome {
        let pid = try spawn()
        onStart?(pid)
        let timedOut = Flag()
        // The timeout kills the program; the wait below then sees it end.
        let timer = timeout.map { limit in
            Task {
                guard (try? await Task.sleep(for: limit)) != nil else { return }
                timedOut.set()
                kill(-pid, SIGKILL)
            }
        }
        // The wait itself is not cancellable: a cancelled task kills the program and still waits for it.
        let (status, used) = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, rusage), Never>) in
                Thread.detachNewThread {
                    var status: Int32 = 0
                    var used = rusage()
                    while wait4(pid, &status, 0, &used) < 0 && errno == EINTR {}
                    continuation.resume(returning: (status, used))
                }
            }
        } onCancel: {
            kill(-pid, SIGKILL)
        }
        timer?.cancel()
        // Nothing the program started may outlive it.
        kill(-pid, SIGKILL)
        try Task.checkCancellation()
        let signalled = status & 0x7F != 0
        return Outcome(
            exitCode: signalled ? 128 + (status & 0x7F) : (status >> 8) & 0xFF, signal: signalled ? status & 0x7F : nil,
            timedOut: timedOut.isSet,
            maxResidentBytes: UInt64(max(0, used.ru_maxrss)) * 1024,
            cpuSeconds: Double(used.ru_utime.tv_sec + used.ru_stime.tv_sec) + Double(used.ru_utime.tv_usec + used.ru_stime.tv_usec) / 1_000_000
        )
    }

    /// posix_spawn with stdout and stderr appended to their files, stdin from /dev/null, a new process
    /// group, the descriptors in `passing` as 3, 4, …, and every other descriptor of the unit closed.
    private func spawn() throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, standardOutput, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        if standardError == standardOutput {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, standardError, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        }
        // Each passed input is a pipe, filled and closed for writing; its read end is placed high
        // first, so that moving it to 3, 4, … never overwrites one that is still to be placed.
        var high: [Int32] = []
        defer { high.forEach { close($0) } }
        for bytes in passing {
            high.append(try Self.makePipe(holding: bytes))
        }
        for (offset, descriptor) in high.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, descriptor, 3 + Int32(offset))
        }
        guard SpawnExtensions.addCloseFrom(&actions, 3 + Int32(high.count)) == 0 else {
            throw ChildRunError(message: "cannot arrange for the unit's descriptors to be closed")
        }
        if let directory {
            guard SpawnExtensions.addChdir(&actions, directory) == 0 else {
                throw ChildRunError(message: "cannot arrange the working directory \(directory)")
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ChildRunError(message: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

extension ChildRun {
    /// The read end of a new pipe (close-on-exec, at 1000 or above) that holds `bytes` and is closed for writing.
    fileprivate static func makePipe(holding bytes: [UInt8]) throws -> Int32 {
        guard bytes.count <= 65_536 else { throw ChildRunError(message: "an input of \(bytes.count) bytes does not fit a pipe") }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw ChildRunError(message: "cannot create a pipe: \(String(cString: strerror(errno)))") }
        defer { close(ends[0]) }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        let written = bytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        close(ends[1])
        guard written == bytes.count else { throw ChildRunError(message: "cannot fill a pipe: \(String(cString: strerror(errno)))") }
        let high = fcntl(ends[0], F_DUPFD_CLOEXEC, 1000)
        guard high >= 0 else { throw ChildRunError(message: "cannot move a pipe: \(String(cString: strerror(errno)))") }
        return high
    }
}

/// glibc's spawn file actions that Swift's Glibc module does not declare (they are GNU extensions,
/// in glibc since 2.29 and 2.34): found once by name in the C library.
enum SpawnExtensions {
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    private static let chdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
    private static let closeFrom: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")

    private static func symbol<T>(_ name: String) -> T? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { unsafeBitCast($0, to: T.self) }
    }

    /// Whether this C library can close descriptors and change directories in a spawned child.
    static var available: Bool { chdir != nil && closeFrom != nil }

    static func addChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: String) -> Int32 {
        guard let chdir else { return ENOSYS }
        return chdir(actions, path)
    }

    static func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32) -> Int32 {
        guard let closeFrom else { return ENOSYS }
        return closeFrom(actions, lowest)
    }
}

struct ChildRunError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
