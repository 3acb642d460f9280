import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program as a child process and reports how it ended and its peak memory, read with
/// wait4 so that it is the child's own figure, not the test process's.
struct ChildProcess {
    struct Outcome {
        var status: Int32
        /// Peak resident set size in bytes.
        var peakMemory: Int
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(executable, arguments) })
            }
        }
    }

    private static func runBlocking(_ executable: String, _ arguments: [String]) throws -> Outcome {
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, nil, nil, argv, environ)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .ENOENT) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECHILD) }
        }
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Outcome(status: exitStatus, peakMemory: usage.ru_maxrss * 1024)
    }
}

/// Executables built next to the test bundle (`swift build` puts every product in one folder).
enum BuildProducts {
    static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path

    static func path(_ name: String) -> String {
        directory + "/" + name
    }
}
