import Foundation

/// Runs a program to completion without blocking the cooperative pool; its own process group (via
/// setsid) lets a timeout kill everything it started.
struct ChildRun {
    struct Outcome: Sendable {
        var exitCode: Int32
        /// The signal that ended the process, if one did.
        var signal: Int32?
        var timedOut: Bool
    }

    var executable: String
    var arguments: [String]
    var directory: String
    var environment: [String: String]
    var standardOutput: String
    var standardError: String
    var timeout: Duration?

    func run() async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = [executable] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = environment
        FileManager.default.createFile(atPath: standardOutput, contents: nil)
        FileManager.default.createFile(atPath: standardError, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: standardOutput))
        let err = standardError == standardOutput ? out : try FileHandle(forWritingTo: URL(fileURLWithPath: standardError))
        defer {
            try? out.close()
            if err !== out { try? err.close() }
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice

        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.continuation.finish() }
        try process.run()
        let group = process.processIdentifier  // setsid makes the child its group's leader
        var timedOut = false
        if let timeout {
            timedOut = await withTaskGroup(of: Bool.self) { tasks in
                tasks.addTask { for await _ in exited.stream {}; return false }
                tasks.addTask { (try? await Task.sleep(for: timeout)) != nil }
                let first = await tasks.next() ?? false
                tasks.cancelAll()
                return first
            }
            if timedOut { kill(-group, SIGKILL) }
        }
        for await _ in exited.stream {}
        process.waitUntilExit()
        // Nothing the job started may outlive it.
        kill(-group, SIGKILL)
        let signalled = process.terminationReason == .uncaughtSignal
        return Outcome(exitCode: process.terminationStatus, signal: signalled ? process.terminationStatus : nil, timedOut: timedOut)
    }
}
