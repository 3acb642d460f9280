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

    /// Processes whose working directory is `path`.
    private func pids(runningIn path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { $0.allSatisfy(\.isNumber) }.filter { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) == path
        }
    }
}
