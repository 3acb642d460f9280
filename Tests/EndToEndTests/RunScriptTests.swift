import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// scripts/run as a newcomer starts it, with the test build's executables (FERRY_BIN_DIR) and the
/// test broker: a service that cannot start as configured stops it with that service's own message,
/// instead of being restarted forever while jobs wait.
@Suite("scripts/run")
struct RunScriptTests {
    /// scripts/run as a terminal starts it: with no signal blocked. The test runner's threads block
    /// them, a mask that exec keeps and that bash cannot undo, so Ctrl-C's SIGTERM would never arrive.
    static func scriptsRun() -> Process {
        let run = Process()
        run.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        run.arguments = [
            "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
            Repository.root + "/scripts/run",
        ]
        return run
    }

    @Test func aServiceThatCannotStartStopsScriptsRunWithItsMessage() async throws {
        let data = try TemporaryDirectory("ferry-run")
        // Seven ports in a row from a random base (the script uses FERRY_PORT to FERRY_PORT + 6).
        let base = Int.random(in: 20_000...60_000)
        let run = Self.scriptsRun()
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FERRY_") }
        environment.merge([
            "FERRY_BIN_DIR": BuildProducts.directory, "FERRY_PORT": "\(base)", "FERRY_DATA_DIR": data.path,
            "FERRY_AMQP_URL": Stack.amqpURL + "ferry-run-none-\(base)", "FERRY_UNIT_MAX_PROCESSES": "2",
        ]) { $1 }
        run.environment = environment
        let output = Pipe()
        run.standardOutput = output
        run.standardError = output
        try run.run()
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await onOwnThread { run.waitUntilExit() }
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(120))
                return false
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        if !finished { kill(run.processIdentifier, SIGTERM) }
        let said = try await onOwnThread { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        #expect(finished, "scripts/run kept going with a unit that cannot start:\n\(said)")
        #expect(run.terminationStatus == 78, "\(said)")
        #expect(said.contains("run: processing-unit-") && said.contains("cannot start as configured"), "\(said)")
        #expect(said.contains("unit.max-processes") && said.contains("too few"), "the unit's own message is not shown:\n\(said)")
        #expect(!said.contains("Ferry is running"), "\(said)")
        // Nothing of it is left running.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { pid in
            guard Int(pid) != nil, let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: line, as: UTF8.self).contains("--http-port\u{0}\(base)")
        } ?? []
        #expect(left.isEmpty, "services of the stopped run are still running: \(left)")
    }

    /// A newcomer working as root clones into /root (0700) and keeps the default data folder inside
    /// the checkout: the job user cannot pass through it, and Ferry still works, because sandboxes
    /// reach only the units' own sandbox root.
    @Test func aDataFolderTheJobUserCannotReachStillRunsSandboxedJobs() async throws {
        let home = try TemporaryDirectory("ferry-home")
        chmod(home.path, 0o700)  // like /root
        let data = home.file("checkout/.ferry"), sandbox = try TemporaryDirectory("ferry-run-sandbox")
        let base = Int.random(in: 20_000...60_000)
        let (vhost, amqp) = try await Stack.makeVhost()
        defer { Task { try? await Stack.deleteVhost(vhost) } }
        let run = Self.scriptsRun()
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FERRY_") }
        environment.merge([
            "FERRY_BIN_DIR": BuildProducts.directory, "FERRY_PORT": "\(base)", "FERRY_DATA_DIR": data, "FERRY_AMQP_URL": amqp,
            "FERRY_UNIT_SANDBOX_ROOT": sandbox.path, "FERRY_AUTH_BCRYPT_COST": "4",
        ]) { $1 }
        run.environment = environment
        let log = home.file("run.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        run.standardOutput = output
        run.standardError = output
        try run.run()
        defer { if run.isRunning { kill(run.processIdentifier, SIGKILL) } }
        let said = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        var running = false
        for _ in 0..<300 where run.isRunning {
            if said().contains("Ferry is running") { running = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(running, "scripts/run did not get Ferry running:\n\(said())")
        // The setup link is the line after "Ferry is running": give the script a moment to write it.
        let setupLink = "First administrator: open http://127.0.0.1:\(base)/setup?token="
        for _ in 0..<50 where !said().contains(setupLink) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(said().contains(setupLink), "\(said())")
        var info = stat()
        #expect(stat(data, &info) == 0 && info.st_mode & 0o777 == 0o700, "the data folder is open to others")

        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(2), defaultTimeout: .seconds(30)))
        let url = "http://127.0.0.1:\(base)"
        let credentials = ["username": "newcomer", "password": "a long enough password"]
        try await client.json("POST", url + "/api/v1/auth/register", body: credentials)
        struct Login: Decodable { var token: String }
        let token = try await client.json("POST", url + "/api/v1/auth/login", body: credentials).decode(Login.self).token
        var zip = RawZipBuilder()
        zip.file("first/code.py", "import os\nopen('output/who.txt', 'w').write(str(os.getuid()))\n")
        let bundle = home.file("first.zip")
        try zip.write(to: bundle)
        struct Job: Decodable { var id: String; var status: String; var reason: String? }
        let auth = [(name: "Authorization", value: "Bearer \(token)")]
        let created = try await client.execute(.init(method: "POST", url: url + "/api/v1/jobs", headers: auth + [("Content-Type", "application/zip")], body: .file(path: bundle)))
        let job = try created.decode(Job.self)
        var final = job
        for _ in 0..<300 where !["succeeded", "failed", "killed", "timed_out", "canceled", "error"].contains(final.status) {
            try await Task.sleep(for: .milliseconds(100))
            final = try await client.json("GET", url + "/api/v1/jobs/\(job.id)", headers: auth).decode(Job.self)
        }
        #expect(final.status == "succeeded", "\(final.status): \(final.reason ?? "")\n\(said())")
        try await client.shutdown()

        kill(run.processIdentifier, SIGTERM)
        for _ in 0..<300 where run.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!run.isRunning, "scripts/run did not stop within 30 s of SIGTERM")
        #expect(said().contains("run: stopped"))
    }
}
