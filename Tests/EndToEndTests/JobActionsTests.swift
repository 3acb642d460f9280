import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// Cancel, re-run and delete against the real stack: the cancel request travels through
/// `ferry.control` to the unit that runs the job. Serialized: one test fills the unit's four slots.
@Suite("Job actions end to end", .runningStack, .serialized)
struct JobActionsTests {
    var stack: Stack { Stack.current! }

    /// A job that says it started, then sleeps far longer than any test waits.
    static let sleeper = "import time\nprint('started', flush=True)\nopen('output/partial.txt', 'w').write('kept')\ntime.sleep(600)\n"

    func post(_ researcher: Researcher, _ path: String) async throws -> HTTPResponse {
        try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + path, headers: researcher.auth))
    }

    func waitFor(_ researcher: Researcher, _ id: String, seconds: Double = 60, until: (APIJob, String) -> Bool) async throws -> APIJob {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let job = try await researcher.job(id).decode(APIJob.self)
            if until(job, try await researcher.log(id, stream: "stdout")) { return job }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("job \(id) did not get there within \(seconds) s; services said:\n\(stack.logs)")
        throw CancellationError()
    }

    @Test func cancelingARunningJobKillsItsProcessesAndKeepsItsPartialOutput() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("cancel", on: stack)
        let job = try await alice.submit(try Bundles.folder("sleeper", files: ["code.py": Self.sleeper], in: work), fileName: "sleeper.zip")
        _ = try await waitFor(alice, job.id) { job, stdout in job.status == "running" && stdout.contains("started") }
        #expect(!Stack.processes(of: job.id).isEmpty)

        let canceled = try await post(alice, "/api/v1/jobs/\(job.id)/cancel")
        #expect(canceled.status == 202)
        let final = try await alice.waitUntilFinished(job.id, seconds: 30)
        #expect(final.status == "canceled")
        #expect(final.reason?.contains("while it ran") == true, "\(final.reason ?? "")")
        #expect(Stack.processes(of: job.id).isEmpty)
        #expect(try await alice.result(job.id, into: work)["partial.txt"] == "kept")
    }

    @Test func aJobCanceledWhileQueuedNeverRuns() async throws {
        let work = try TemporaryDirectory()
        let bob = try await Researcher.signUp("queued", on: stack)
        // The stack's unit has 4 slots: 4 sleepers fill it, so the fifth job waits in the queue.
        var sleepers: [APIJob] = []
        for index in 0..<4 {
            sleepers.append(try await bob.submit(try Bundles.folder("busy\(index)", files: ["code.py": Self.sleeper], in: work), fileName: "busy\(index).zip"))
        }
        for sleeper in sleepers { _ = try await waitFor(bob, sleeper.id) { job, _ in job.status == "running" } }
        let waiting = try await bob.submit(try Bundles.folder("never", files: ["code.py": "open('output/ran.txt', 'w').write('ran')\n"], in: work), fileName: "never.zip")
        #expect(waiting.status == "queued")
        let canceled = try await post(bob, "/api/v1/jobs/\(waiting.id)/cancel").decode(APIJob.self)
        #expect(canceled.status == "canceled")

        for sleeper in sleepers { #expect(try await post(bob, "/api/v1/jobs/\(sleeper.id)/cancel").status == 202) }
        for sleeper in sleepers { #expect(try await bob.waitUntilFinished(sleeper.id, seconds: 30).status == "canceled") }
        // The freed slots take the fifth message off the queue; the unit must drop it unrun.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !FileManager.default.fileExists(atPath: stack.data.file("jobs/\(waiting.id)/manifest.json")) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(FileManager.default.fileExists(atPath: stack.data.file("jobs/\(waiting.id)/manifest.json")), "the canceled job's message was never taken")
        #expect(!FileManager.default.fileExists(atPath: stack.data.file("results/\(waiting.id).zip")))
        #expect(!FileManager.default.fileExists(atPath: stack.sandbox.file("work/\(waiting.id)")))
        let after = try await bob.job(waiting.id).decode(APIJob.self)
        #expect(after.status == "canceled" && after.reason?.contains("before it ran") == true)
    }

    @Test func runAgainThenDeleteTheOriginal() async throws {
        let work = try TemporaryDirectory()
        let carol = try await Researcher.signUp("rerun", on: stack)
        let code = "import uuid\nopen('output/run.txt', 'w').write(str(uuid.uuid4()))\n"
        let first = try await carol.submit(try Bundles.folder("again", files: ["code.py": code], in: work), fileName: "again.zip")
        #expect(try await carol.waitUntilFinished(first.id).status == "succeeded")
        let second = try await post(carol, "/api/v1/jobs/\(first.id)/rerun").decode(APIJob.self)
        #expect(second.id != first.id && second.project == "again")
        #expect(try await carol.waitUntilFinished(second.id).status == "succeeded")
        let firstRun = try await carol.result(first.id, into: work)["run.txt"]
        let secondRun = try await carol.result(second.id, into: work)["run.txt"]
        #expect(firstRun != nil && secondRun != nil && firstRun != secondRun, "the second job must really run again")

        let deleted = try await stack.client.execute(HTTPRequest(method: "DELETE", url: stack.backendURL + "/api/v1/jobs/\(first.id)", headers: carol.auth))
        #expect(deleted.status == 204)
        #expect(try await carol.job(first.id).status == 404)
        for path in ["results/\(first.id).zip", "jobs/\(first.id)", "bundles/\(first.id).zip"] {
            #expect(!FileManager.default.fileExists(atPath: stack.data.file(path)), "\(path) is left")
        }
        #expect(try await carol.job(second.id).status == 200)
    }

    /// A delete whose files cannot be removed keeps the job and says so (it used to answer 204 and
    /// leave the files). The log is made immutable (`chattr +i`), which stops even root.
    @Test func aDeleteThatCannotRemoveTheFilesKeepsTheJobAndSaysSo() async throws {
        let work = try TemporaryDirectory()
        let dora = try await Researcher.signUp("stuck", on: stack)
        let job = try await dora.submit(try Bundles.folder("stuck", files: ["code.py": "print('hi')\n"], in: work), fileName: "stuck.zip")
        #expect(try await dora.waitUntilFinished(job.id).status == "succeeded")
        let log = stack.data.file("jobs/\(job.id)/stdout.log")
        let locked = try await ChildProcess.run("/usr/bin/chattr", ["+i", log], includingErrors: true)
        try #require(locked.status == 0, "chattr +i: \(locked.output)")
        defer { _ = try? Process.run(URL(fileURLWithPath: "/usr/bin/chattr"), arguments: ["-i", log]).waitUntilExit() }

        let refused = try await stack.client.execute(HTTPRequest(method: "DELETE", url: stack.backendURL + "/api/v1/jobs/\(job.id)", headers: dora.auth))
        #expect(refused.status == 500)
        let body = String(decoding: refused.body, as: UTF8.self)
        #expect(body.contains("job.files_kept") && body.contains("logs") && body.contains("operator"), "\(body)")
        #expect(!body.contains(stack.data.path), "the answer names a server path: \(body)")
        #expect(try await dora.job(job.id).status == 200, "the job is gone although its files stay")

        _ = try await ChildProcess.run("/usr/bin/chattr", ["-i", log])
        let deleted = try await stack.client.execute(HTTPRequest(method: "DELETE", url: stack.backendURL + "/api/v1/jobs/\(job.id)", headers: dora.auth))
        #expect(deleted.status == 204)
        #expect(!FileManager.default.fileExists(atPath: stack.data.file("jobs/\(job.id)")))
    }
}
