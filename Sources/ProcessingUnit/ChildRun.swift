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

    func run() async throws -> Outcome {
        let pid = try spawn()
        onStart?(pid)
        let exit = AsyncStream<Int32>.makeStream()
        let usage = Mutex(rusage())
        Thread.detachNewThread {
            var status: Int32 = 0
            var used = rusage()
            while wait4(pid, &status, 0, &used) < 0 && errno == EINTR {}
            usage.withLock { $0 = used }
            exit.continuation.yield(status)
            exit.continuation.finish()
        }
        var timedOut = false
        let status: Int32 = await withTaskGroup(of: Int32?.self) { tasks in
            tasks.addTask { await exit.stream.first { _ in true } ?? 0 }
            if let timeout {
                tasks.addTask {
                    guard (try? await Task.sleep(for: timeout)) != nil else { return nil }
                    return -1
                }
            }
            var result: Int32 = 0
            while let next = await tasks.next() {
                guard let value = next else { continue }
                if value == -1 {
                    timedOut = true
                    kill(-pid, SIGKILL)
                    continue
                }
                result = value
                tasks.cancelAll()
                break
            }
            return result
        }
        // Nothing the program started may outlive it.
        kill(-pid, SIGKILL)
        let signalled = status & 0x7F != 0
        let used = usage.withLock { $0 }
        return Outcome(
            exitCode: signalled ? 128 + (status & 0x7F) : (status >> 8) & 0xFF, signal: signalled ? status & 0x7F : nil, timedOut: timedOut,
            maxResidentBytes: UInt64(max(0, used.ru_maxrss)) * 1024,
            cpuSeconds: Double(used.ru_utime.tv_sec + used.ru_stime.tv_sec) + Double(used.ru_utime.tv_usec + used.ru_stime.tv_usec) / 1_000_000
        )
    }

    /// posix_spawn with stdout and stderr appended to their files, stdin from /dev/null, a new process group.
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

        // env(1) changes the working directory (Swift's Glibc lacks posix_spawn_file_actions_addchdir_np).
        let command = directory.map { ["/usr/bin/env", "--chdir=\($0)", "--", executable] } ?? [executable]
        let argv = (command + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ChildRunError(message: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}

struct ChildRunError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
