import FerryContracts
import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The five executables as an operator runs them: real processes, configured by flags or FERRY_* variables.
@Suite("Service executables")
struct ServiceProcessTests {
    /// The Frontend passes /health through to the Backend; `frontendPassesHealthToTheBackend` covers it.
    static let services = [
        ("Backend", "backend"), ("Producer", "producer"),
        ("Consumer", "consumer"), ("ProcessingUnit", "processing-unit"),
    ]

    /// With no broker at its URL, a service that needs one answers 503 and says so; the unit, which
    /// needs only its volume, is ready.
    @Test(arguments: services.map(\.0))
    func startsAnswersHealthWithItsReadinessAndStopsCleanlyOnSIGTERM(executable: String) async throws {
        let port = try unusedPort()
        let data = try TemporaryDirectory()
        let noBroker = "amqp://guest:guest@127.0.0.1:\(try unusedPort())/"
        let service = try RunningService(executable, arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--amqp-url", noBroker])
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(1), defaultTimeout: .seconds(10)))
        let health = try await service.waitForHealth(port: port, client: client)
        let body = String(decoding: health.body, as: UTF8.self)
        if executable == "ProcessingUnit" {
            #expect(health.status == 200 && body.contains(#""volume":"ok""#), "\(body)")
        } else {
            #expect(health.status == 503 && body.contains(#""status":"unavailable""#) && body.contains(#""broker":"#), "\(body)")
        }
        let expectedName = try #require(Self.services.first { $0.0 == executable }).1
        #expect(body.contains(#""service":"\#(expectedName)""#))
        try await client.shutdown()

        let status = try await service.terminate()
        #expect(status == 0, "\(executable) exited with \(status) on SIGTERM; stderr: \(service.standardError)")
    }

    @Test func frontendPassesHealthToTheBackend() async throws {
        let data = try TemporaryDirectory()
        let backendPort = try unusedPort(), frontendPort = try unusedPort()
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(1), defaultTimeout: .seconds(5)))
        let frontend = try RunningService("Frontend", arguments: ["--http-port", "\(frontendPort)", "--backend-url", "http://127.0.0.1:\(backendPort)"])
        let down = try await frontend.waitForHealth(port: frontendPort, client: client)
        #expect(down.status == 502)
        #expect(String(decoding: down.body, as: UTF8.self).contains("backend.unavailable"))

        // The Backend answers, but without a broker it is not ready: the Frontend says exactly that.
        let backend = try RunningService("Backend", arguments: ["--http-port", "\(backendPort)", "--data-dir", data.path, "--amqp-url", "amqp://guest:guest@127.0.0.1:\(try unusedPort())/"])
        _ = try await backend.waitForHealth(port: backendPort, client: client)
        let up = try await client.execute(.init(url: "http://127.0.0.1:\(frontendPort)/health"))
        let body = String(decoding: up.body, as: UTF8.self)
        #expect(up.status == 503 && body.contains(#""service":"backend""#) && body.contains(#""database":"ok""#) && body.contains(#""broker":"#), "\(body)")
        try await client.shutdown()
        #expect(try await frontend.terminate() == 0)
        #expect(try await backend.terminate() == 0)
    }

    /// The internal token is required by every service that makes or takes internal calls, and is
    /// refused on the command line, where every local user could read it.
    @Test(arguments: ["Backend", "Producer", "Consumer", "ProcessingUnit"])
    func withoutTheInternalTokenAServiceRefusesToStart(executable: String) async throws {
        let data = try TemporaryDirectory()
        let common = ["--http-port", "\(try unusedPort())", "--data-dir", data.path, "--unit-sandbox", "none"]
        let missing = try RunningService(executable, arguments: common, environment: ["FERRY_INTERNAL_TOKEN": ""])
        #expect(try await missing.waitForExit() == 78)
        #expect(missing.standardError.contains("FERRY_INTERNAL_TOKEN") && missing.standardError.contains("required"), "\(missing.standardError)")
        let onCommandLine = try RunningService(executable, arguments: common + ["--internal-token", RunningService.internalToken], environment: ["FERRY_INTERNAL_TOKEN": ""])
        #expect(try await onCommandLine.waitForExit() == 78)
        #expect(onCommandLine.standardError.contains("command line"), "\(onCommandLine.standardError)")
        #expect(!onCommandLine.standardError.contains(RunningService.internalToken), "the token was printed")
    }

    @Test func readsItsPortFromTheEnvironment() async throws {
        let port = try unusedPort()
        let service = try RunningService("Producer", arguments: [], environment: ["FERRY_HTTP_PORT": "\(port)"])
        let client = HTTPClient(configuration: .init(defaultTimeout: .seconds(10)))
        #expect(String(decoding: try await service.waitForHealth(port: port, client: client).body, as: UTF8.self).contains(#""service":"producer""#))
        try await client.shutdown()
        #expect(try await service.terminate() == 0)
    }

    @Test func commandLineWinsOverTheEnvironment() async throws {
        let port = try unusedPort()
        let service = try RunningService("Consumer", arguments: ["--http-port", "\(port)"], environment: ["FERRY_HTTP_PORT": "1"])
        let client = HTTPClient(configuration: .init(defaultTimeout: .seconds(10)))
        #expect(String(decoding: try await service.waitForHealth(port: port, client: client).body, as: UTF8.self).contains(#""service":"consumer""#))
        try await client.shutdown()
        #expect(try await service.terminate() == 0)
    }

    @Test func invalidConfigurationExitsWithAMessageThatSaysWhatToFix() async throws {
        let bad = try RunningService("Backend", arguments: ["--http-port", "70000"])
        #expect(try await bad.waitForExit() == 78)
        #expect(bad.standardError.contains("--http-port"))
        #expect(bad.standardError.contains("FERRY_HTTP_PORT"))
        #expect(bad.standardError.contains("70000"))

        let level = try RunningService("Backend", arguments: ["--log-level", "loud"])
        #expect(try await level.waitForExit() == 78)
        #expect(level.standardError.contains("loud"))
    }

    /// The unit asks the interpreter itself where it lives and which version it is; one that is
    /// missing or is not Python stops the unit with a message that names the setting.
    @Test func aUnitWhosePythonDoesNotRunSaysSoAndWhatToSet() async throws {
        let data = try TemporaryDirectory()
        for python in ["/nonexistent/python3", "/bin/false"] {
            let unit = try RunningService(
                "ProcessingUnit", arguments: ["--http-port", "\(try unusedPort())", "--data-dir", data.path, "--unit-sandbox", "none", "--python-path", python]
            )
            #expect(try await unit.waitForExit() == 78, "\(python)")
            #expect(unit.standardError.contains("\(python) does not run"), "\(python): \(unit.standardError)")
            #expect(unit.standardError.contains("python.path"), "\(python): \(unit.standardError)")
        }
    }

    @Test func aUnitThatCannotSandboxJobsRefusesToStartUnlessTheOperatorOptsOut() async throws {
        let data = try TemporaryDirectory()
        let missingUser = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(try unusedPort())", "--data-dir", data.path, "--unit-job-user", "no-such-ferry-user"])
        #expect(try await missingUser.waitForExit() == 78)
        #expect(missingUser.standardError.contains("no-such-ferry-user") && missingUser.standardError.contains("FERRY_UNIT_SANDBOX=none"))

        let unknown = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(try unusedPort())", "--data-dir", data.path, "--unit-sandbox", "chroot"])
        #expect(try await unknown.waitForExit() == 78)
        #expect(unknown.standardError.contains("chroot"))

        let port = try unusedPort()
        let optedOut = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--unit-sandbox", "none", "--unit-job-user", "no-such-ferry-user"])
        let client = HTTPClient()
        #expect(try await optedOut.waitForHealth(port: port, client: client).status == 200)
        try await client.shutdown()
        #expect(try await optedOut.terminate() == 0)
        #expect(optedOut.standardError.contains("unit.sandbox=none"))
    }

    /// A failure of Ferry's own (here: the bundle is missing from the volume) is reported as retryable
    /// and leaves no manifest, so the Consumer hands the job back; the retry runs it afresh.
    @Test func aUnitReportsItsOwnFailuresAsRetryableAndRunsTheRetryAfresh() async throws {
        let data = try TemporaryDirectory()
        let port = try unusedPort()
        let unit = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--unit-sandbox", "none"])
        let client = HTTPClient()
        _ = try await unit.waitForHealth(port: port, client: client)
        let id = UUID().uuidString.lowercased()
        let message = JobMessage(
            jobID: id, owner: UUID().uuidString.lowercased(), project: "demo", bundlePath: "bundles/\(id).zip",
            limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: 512), submittedAt: Date()
        )
        let token = [(name: "Authorization", value: "Bearer \(RunningService.internalToken)")]
        func runUntilFinal() async throws -> RunState {
            var state = try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: message, headers: token).decode(RunState.self)
            while !state.status.isFinal {
                state = try await client.json("GET", "http://127.0.0.1:\(port)/internal/v1/runs/\(id)?after=\(state.status.rawValue)&wait=10", headers: token).decode(RunState.self)
            }
            return state
        }
        let failed = try await runUntilFinal()
        #expect(failed.status == .error && failed.retryable == true, "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: data.file("jobs/\(id)/manifest.json")))

        try FileManager.default.createDirectory(atPath: data.file("bundles"), withIntermediateDirectories: true)
        var zip = RawZipBuilder()
        zip.file("demo/code.py", "open('output/done.txt', 'w').write('yes')\n")
        try Data(zip.bytes()).write(to: URL(fileURLWithPath: data.file("bundles/\(id).zip")))
        let retried = try await runUntilFinal()
        #expect(retried.status == .succeeded && retried.retryable == nil, "\(retried)")
        try await client.shutdown()
        #expect(try await unit.terminate() == 0)
    }

    /// In compose the Backend (uid 10001) owns the shared volume and the unit runs as root; deleting a
    /// job answered 204 while its root-owned folder stayed. The folders the unit makes there are the
    /// volume owner's, so the owner can remove a finished job's logs and result (here `nobody`, by
    /// `rm` running as that user).
    @Test func theVolumesOwnerCanRemoveWhatTheUnitMadeThere() async throws {
        try #require(geteuid() == 0, "the unit runs as root in compose; this test must too")
        let data = try TemporaryDirectory()
        let nobody: (uid: uid_t, gid: gid_t) = (65534, 65534)
        try #require(chown(data.path, nobody.uid, nobody.gid) == 0)
        let port = try unusedPort()
        let unit = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--unit-sandbox", "none"])
        let client = HTTPClient()
        _ = try await unit.waitForHealth(port: port, client: client)
        let id = UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: data.file("bundles"), withIntermediateDirectories: true)
        var zip = RawZipBuilder()
        zip.file("demo/code.py", "open('output/done.txt', 'w').write('yes')\n")
        try zip.write(to: data.file("bundles/\(id).zip"))
        let message = JobMessage(
            jobID: id, owner: UUID().uuidString.lowercased(), project: "demo", bundlePath: "bundles/\(id).zip",
            limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: 512), submittedAt: Date()
        )
        let token = [(name: "Authorization", value: "Bearer \(RunningService.internalToken)")]
        var state = try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: message, headers: token).decode(RunState.self)
        while !state.status.isFinal {
            state = try await client.json("GET", "http://127.0.0.1:\(port)/internal/v1/runs/\(id)?after=\(state.status.rawValue)&wait=10", headers: token).decode(RunState.self)
        }
        #expect(state.status == .succeeded, "\(state)")
        try await client.shutdown()
        #expect(try await unit.terminate() == 0)

        for folder in ["jobs", "results", "jobs/\(id)"] {
            let owner = try FileManager.default.attributesOfItem(atPath: data.file(folder))[.ownerAccountID] as? NSNumber
            #expect(owner?.uint32Value == nobody.uid, "\(folder) belongs to \(String(describing: owner)), not to the volume's owner")
        }
        let removal = try await ChildProcess.run(
            "/usr/bin/setpriv", ["--reuid=\(nobody.uid)", "--regid=\(nobody.gid)", "--clear-groups", "--", "/bin/rm", "-rf", data.file("jobs/\(id)"), data.file("results/\(id).zip")],
            includingErrors: true
        )
        #expect(removal.status == 0, "the volume's owner could not remove the job's files: \(removal.output)")
        #expect(!FileManager.default.fileExists(atPath: data.file("jobs/\(id)")))
        #expect(!FileManager.default.fileExists(atPath: data.file("results/\(id).zip")))
    }
}

/// A unit runs at most `unit.slots` jobs, whatever its Consumer's prefetch: one more is refused with
/// a retryable answer (503 `run.busy`), and taken once a slot is free.
@Suite("Unit slots")
struct UnitSlotTests {
    @Test func aUnitRefusesRunsBeyondItsSlots() async throws {
        let data = try TemporaryDirectory()
        let port = try unusedPort()
        let unit = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--unit-sandbox", "none", "--unit-slots", "1"])
        let client = HTTPClient()
        _ = try await unit.waitForHealth(port: port, client: client)
        let auth = [(name: "Authorization", value: "Bearer \(RunningService.internalToken)")]
        func message() throws -> JobMessage {
            let id = UUID().uuidString.lowercased()
            var zip = RawZipBuilder()
            zip.file("nap/code.py", "import time\ntime.sleep(3)\n")
            try FileManager.default.createDirectory(atPath: data.file("bundles"), withIntermediateDirectories: true)
            try zip.write(to: data.file("bundles/\(id).zip"))
            return JobMessage(jobID: id, owner: UUID().uuidString.lowercased(), project: "nap", bundlePath: "bundles/\(id).zip",
                              limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: 512), submittedAt: Date())
        }
        let first = try message(), second = try message()
        let started = try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: first, headers: auth).decode(RunState.self)
        #expect(started.status == .preparing)
        do {
            try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: second, headers: auth)
            Issue.record("a unit with one slot took a second run")
        } catch let error as HTTPClientError {
            #expect(error.status == 503 && error.description.contains("run.busy"), "\(error)")
        }
        // Asking again for the first run attaches to it; it is not a second run.
        #expect(try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: first, headers: auth).decode(RunState.self).status != .error)
        var state = started
        while !state.status.isFinal {
            state = try await client.json("GET", "http://127.0.0.1:\(port)/internal/v1/runs/\(first.jobID)?after=\(state.status.rawValue)&wait=10", headers: auth).decode(RunState.self)
        }
        #expect(try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: second, headers: auth).decode(RunState.self).status == .preparing)
        try await client.shutdown()
        #expect(try await unit.terminate() == 0)
    }
}
