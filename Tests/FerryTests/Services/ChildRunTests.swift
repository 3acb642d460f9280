import FerryTestSupport
import Foundation
@testable import ProcessingUnit
import Testing

@Suite("Running a job's process")
struct ChildRunTests {
    private func run(_ script: String, timeout: Duration? = nil, in work: TemporaryDirectory) async throws -> ChildRun.Outcome {
        try await ChildRun(
            executable: "/bin/sh", arguments: ["-c", script], directory: work.path, environment: ["PATH": "/usr/bin:/bin"],
            standardOutput: work.file("stdout.log"), standardError: work.file("stderr.log"), timeout: timeout
        ).run()
    }

    @Test func exitCodeAndBothStreamsComeThrough() async throws {
        let work = try TemporaryDirectory()
        let outcome = try await run("echo out; echo err >&2; exit 3", in: work)
        #expect(outcome.exitCode == 3 && outcome.signal == nil && !outcome.timedOut)
        #expect(try String(contentsOfFile: work.file("stdout.log"), encoding: .utf8) == "out\n")
        #expect(try String(contentsOfFile: work.file("stderr.log"), encoding: .utf8) == "err\n")
    }

    @Test func timeoutKillsTheJobAndEverythingItStarted() async throws {
        let work = try TemporaryDirectory()
        let outcome = try await run("(sleep 30; touch late-child) & sleep 30; touch late-parent", timeout: .milliseconds(500), in: work)
        #expect(outcome.timedOut)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try pids(runningIn: work.path).isEmpty, "processes of the job outlived it")
    }

    @Test func backgroundProcessesDoNotOutliveAJobThatExited() async throws {
        let work = try TemporaryDirectory()
        let outcome = try await run("sleep 30 & echo started", in: work)
        #expect(outcome.exitCode == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try pids(runningIn: work.path).isEmpty, "a background process of the job kept running")
    }

    @Test func theProgramInheritsNoDescriptorOfTheUnitButWhatItIsHanded() async throws {
        let work = try TemporaryDirectory()
        // A descriptor the unit holds without close-on-exec (a library's socket, a dup'ed file).
        let leaked = open(work.file("unit-secret"), O_WRONLY | O_CREAT, 0o600)
        try #require(leaked >= 0)
        defer { close(leaked) }
        var child = ChildRun(
            executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd; cat <&3"], directory: work.path, environment: ["PATH": "/usr/bin:/bin"],
            standardOutput: work.file("stdout.log"), standardError: work.file("stderr.log"), timeout: .seconds(10)
        )
        child.passing = [Array("handed over\n".utf8)]
        let outcome = try await child.run()
        let errors = (try? String(contentsOfFile: work.file("stderr.log"), encoding: .utf8)) ?? ""
        #expect(outcome.exitCode == 0, "\(errors)")
        let lines = try String(contentsOfFile: work.file("stdout.log"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.last == "handed over")
        let descriptors = Set(lines.dropLast().compactMap { Int32($0) })
        #expect(descriptors.isSubset(of: [0, 1, 2, 3]), "the program holds descriptors of the unit: \(descriptors.sorted())")
    }

    @Test func theProgramStartsInItsWorkingDirectory() async throws {
        let work = try TemporaryDirectory()
        let outcome = try await run("pwd", in: work)
        #expect(outcome.exitCode == 0)
        let lines = try String(contentsOfFile: work.file("stdout.log"), encoding: .utf8).split(separator: "\n")
        #expect(lines.first.map(String.init) == work.path)
    }

    /// A cancelled run is an error, never an exit: the program and its children are killed first.
    @Test func cancellingARunThrowsAndKillsEverythingItStarted() async throws {
        let work = try TemporaryDirectory()
        let path = work.path
        let running = Task {
            try await ChildRun(
                executable: "/bin/sh", arguments: ["-c", "sleep 30 & sleep 30"], directory: path, environment: ["PATH": "/usr/bin:/bin"],
                standardOutput: path + "/stdout.log", standardError: path + "/stderr.log", timeout: nil
            ).run()
        }
        try await Task.sleep(for: .milliseconds(500))
        running.cancel()
        await #expect(throws: CancellationError.self) { _ = try await running.value }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try pids(runningIn: work.path).isEmpty, "processes of a cancelled run kept running")
    }

    /// Processes whose working directory is `path`.
    private func pids(runningIn path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { $0.allSatisfy(\.isNumber) }.filter { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) == path
        }
    }
}
