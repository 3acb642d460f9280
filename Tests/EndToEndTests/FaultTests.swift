import FerryHTTPClient
import FerryTestSupport
import FerryZip
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A service that the test kills; like scripts/run, the supervisor starts it again when it exits.
final class SupervisedService: @unchecked Sendable {
    // Sendable invariant: `current` and `earlierLogs` are only touched under `lock`.
    let name: String
    let port: Int
    private let executable: String
    private let arguments: [String]
    private let lock = NSLock()
    private var current: RunningService
    private var earlierLogs = ""
    private var stopped = false

    init(_ executable: String, name: String, port: Int, arguments: [String]) throws {
        self.executable = executable
        self.name = name
        self.port = port
        self.arguments = ["--http-port", "\(port)"] + arguments
        current = try RunningService(executable, arguments: self.arguments)
    }

    var pid: Int32 { lock.withLock { current.pid } }
    var logs: String { lock.withLock { earlierLogs + current.standardError } }

    func kill(_ signal: Int32 = SIGKILL) { Foundation.kill(pid, signal) }

    func waitForHealth(client: HTTPClient) async throws {
        _ = try await lock.withLock { current }.waitForHealth(port: port, client: client)
    }

    /// Starts the service again if it exited (called every 200 ms by the stack's supervisor).
    func restartIfExited() {
        lock.withLock {
            guard !stopped, !current.isRunning else { return }
            earlierLogs += current.standardError + "\n--- \(name) restarted ---\n"
            if let next = try? RunningService(executable, arguments: arguments) { current = next }
        }
    }

    func stop() async {
        let service = lock.withLock { stopped = true; return current }
        _ = try? await service.terminate()
    }

    /// Kills the service and never starts it again: a machine that is gone.
    func killForGood() {
        let service = lock.withLock { stopped = true; return current }
        Foundation.kill(service.pid, SIGKILL)
    }
}

/// Ferry's services as processes under a supervisor, on a private broker.
final class SupervisedStack: Sendable {
    let broker: PrivateBroker
    let data: TemporaryDirectory
    let services: [SupervisedService]
    let client: HTTPClient
    private let supervisor: Task<Void, Never>

    var backendURL: String { "http://127.0.0.1:\(service("backend").port)" }

    func service(_ name: String) -> SupervisedService { services.first { $0.name == name }! }

    /// Producer, Backend (sweeping every second) and `units` Consumer + ProcessingUnit pairs.
    init(brokerPort: Int, units: Int = 2, slots: Int = 2, unitArguments: [String] = []) async throws {
        broker = try await PrivateBroker(port: brokerPort)
        data = try TemporaryDirectory("ferry-fault")
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(2), defaultTimeout: .seconds(60)))
        self.client = client
        let common = ["--data-dir", data.path, "--amqp-url", broker.url, "--log-level", "warning", "--amqp-heartbeat", "5"]
        let ports = try (0..<(2 + 2 * units)).map { _ in try unusedPort() }
        var services = [
            try SupervisedService("Producer", name: "producer", port: ports[0], arguments: common),
            try SupervisedService("Backend", name: "backend", port: ports[1], arguments: common + [
                "--producer-url", "http://127.0.0.1:\(ports[0])", "--auth-bcrypt-cost", "4", "--backend-sweep-interval", "1", "--backend-sweep-age", "2",
            ]),
        ]
        for index in 0..<units {
            let unitPort = ports[2 + 2 * index], consumerPort = ports[3 + 2 * index]
            // Units log each finished job at info: the test counts them.
            services.append(try SupervisedService("ProcessingUnit", name: "unit\(index)", port: unitPort, arguments: common + ["--log-level", "info", "--unit-slots", "\(slots)", "--unit-sandbox-root", data.file("unit")] + unitArguments))
            services.append(try SupervisedService("Consumer", name: "consumer\(index)", port: consumerPort, arguments: common + [
                "--unit-url", "http://127.0.0.1:\(unitPort)", "--unit-slots", "\(slots)",
            ]))
        }
        self.services = services
        for service in services { try await service.waitForHealth(client: client) }
        supervisor = Task { [services] in
            while !Task.isCancelled {
                for service in services { service.restartIfExited() }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Runs `body` with a new stack and stops it afterwards, also when `body` throws.
    static func with(
        brokerPort: Int, units: Int = 2, unitArguments: [String] = [], _ body: (SupervisedStack) async throws -> Void
    ) async throws {
        let stack = try await SupervisedStack(brokerPort: brokerPort, units: units, unitArguments: unitArguments)
        do {
            try await body(stack)
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    func stop() async {
        supervisor.cancel()
        for service in services.reversed() { await service.stop() }
        try? await client.shutdown()
        await broker.stop()
    }

    var logs: String { services.map { "== \($0.name)\n" + $0.logs }.joined(separator: "\n") }

    /// How many times a unit ran the job to its end (each completion logs "job finished").
    func completions(of jobID: String) -> Int {
        services.filter { $0.name.hasPrefix("unit") }.map { service in
            service.logs.split(separator: "\n").filter { $0.contains("job finished") && $0.contains(jobID) }.count
        }.reduce(0, +)
    }
}

/// Crashes, broker restarts and redeliveries against the real services and a real broker: every
/// accepted job ends with its result, none runs to completion twice.
@Suite("No job lost", .serialized)
struct FaultTests {
    static func researcher(on stack: SupervisedStack) async throws -> [(name: String, value: String)] {
        let credentials = ["username": "fault-\(UUID().uuidString.prefix(6))", "password": "a long enough password"]
        try await stack.client.json("POST", stack.backendURL + "/api/v1/auth/register", body: credentials)
        struct Login: Decodable { var token: String }
        let token = try await stack.client.json("POST", stack.backendURL + "/api/v1/auth/login", body: credentials).decode(Login.self).token
        return [("Authorization", "Bearer \(token)")]
    }

    static func upload(_ code: String, name: String, auth: [(name: String, value: String)], stack: SupervisedStack, work: TemporaryDirectory) async throws -> APIJob? {
        let zip = try Bundles.folder(name, files: ["code.py": code], in: work)
        guard let response = try? await stack.client.execute(HTTPRequest(
            method: "POST", url: stack.backendURL + "/api/v1/jobs", headers: auth + [("Content-Type", "application/zip")], body: .file(path: zip), timeout: .seconds(30)
        )), response.status == 201 else { return nil }  // not accepted (the Backend was down): the researcher would try again
        return try response.decode(APIJob.self)
    }

    static func waitForFinal(_ ids: [String], auth: [(name: String, value: String)], stack: SupervisedStack, seconds: Double) async throws -> [String: APIJob] {
        var final: [String: APIJob] = [:]
        let deadline = Date().addingTimeInterval(seconds)
        while final.count < ids.count, Date() < deadline {
            for id in ids where final[id] == nil {
                guard let response = try? await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)", headers: auth, timeout: .seconds(5))),
                      response.status == 200, let job = try? response.decode(APIJob.self) else { continue }
                if ["succeeded", "failed", "timed_out", "killed", "canceled", "error"].contains(job.status) { final[id] = job }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return final
    }

    static func result(_ id: String, auth: [(name: String, value: String)], stack: SupervisedStack, work: TemporaryDirectory) async throws -> String? {
        let path = work.file("\(id).zip")
        let response = try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)/result", headers: auth, destination: .file(path: path)))
        guard response.status == 200 else { return nil }
        let reader = try ZipReader(path: path)
        guard let entry = reader.entries.first(where: { $0.name == "answer.txt" }) else { return nil }
        return String(decoding: try reader.contents(of: entry, maxBytes: 1 << 20), as: UTF8.self)
    }

    @Test func everyAcceptedJobSucceedsOnceThroughCrashesAndABrokerRestart() async throws {
        try await SupervisedStack.with(brokerPort: 5701) { stack in
            let work = try TemporaryDirectory()
            let auth = try await Self.researcher(on: stack)
            // Uploads flow for ~12 s while, one after another, every kind of service is killed and the broker's application stops and starts.
            let uploads = Task { () -> [(id: String, answer: String)] in
                var accepted: [(id: String, answer: String)] = []
                for index in 0..<40 {
                    let answer = "job \(index) \(UUID().uuidString.prefix(8))"
                    let code = "import time\ntime.sleep(0.3 + \(index % 5) * 0.2)\nopen('output/answer.txt', 'w').write('\(answer)')\n"
                    if let job = try? await Self.upload(code, name: "flow\(index)", auth: auth, stack: stack, work: work) { accepted.append((job.id, answer)) }
                    try? await Task.sleep(for: .milliseconds(300))
                }
                return accepted
            }
            try await Task.sleep(for: .seconds(1.5))
            stack.service("consumer0").kill()
            try await Task.sleep(for: .seconds(1.5))
            stack.service("unit1").kill()
            try await Task.sleep(for: .seconds(1.5))
            stack.service("producer").kill()
            try await Task.sleep(for: .seconds(1.5))
            stack.service("backend").kill()
            try await Task.sleep(for: .seconds(1.5))
            try await stack.broker.control("stop_app")
            try await Task.sleep(for: .seconds(3))
            try await stack.broker.control("start_app")
            let accepted = await uploads.value
            #expect(accepted.count >= 20, "most uploads should have been accepted; \(accepted.count) were")

            for name in ["consumer0", "unit1", "producer", "backend"] {
                #expect(stack.service(name).logs.contains("--- \(name) restarted ---"), "\(name) was killed and should have been restarted")
            }
            let final = try await Self.waitForFinal(accepted.map(\.id), auth: auth, stack: stack, seconds: 300)
            for (id, answer) in accepted {
                let job = try #require(final[id], "job \(id) never finished; services said:\n\(stack.logs.suffix(20000))")
                #expect(job.status == "succeeded", "job \(id) ended \(job.status): \(job.reason ?? "")")
                #expect(try await Self.result(id, auth: auth, stack: stack, work: work) == answer, "job \(id)'s result")
                #expect(stack.completions(of: id) == 1, "job \(id) ran to completion \(stack.completions(of: id)) times")
            }
        }
    }

    @Test func aJobThatAlwaysKillsItsUnitIsDeadLetteredAndEndsError() async throws {
        // Without the sandbox a job can reach its unit; this one kills it every time it runs.
        try await SupervisedStack.with(brokerPort: 5702, units: 1, unitArguments: ["--unit-sandbox", "none"]) { stack in
            let work = try TemporaryDirectory()
            let auth = try await Self.researcher(on: stack)
            let unitPort = stack.service("unit0").port
            let killer = """
                import os, signal
                for pid in filter(str.isdigit, os.listdir('/proc')):
                    try:
                        command = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')
                    except OSError:
                        continue
                    if any(part.endswith(b'ProcessingUnit') for part in command) and b'\(unitPort)' in command:
                        os.kill(int(pid), signal.SIGKILL)
                """
            let job = try #require(try await Self.upload(killer, name: "unit-killer", auth: auth, stack: stack, work: work))
            let final = try await Self.waitForFinal([job.id], auth: auth, stack: stack, seconds: 180)
            let ended = try #require(final[job.id], "the job never ended; services said:\n\(stack.logs.suffix(20000))")
            #expect(ended.status == "error")
            #expect(ended.reason?.contains("dead-letter") == true, "\(ended.reason ?? "")")
            #expect(try await stack.broker.messages(in: "ferry.dead-letters", expected: 1) == 1, "the operators' copy is kept")
            // An ordinary job after it still runs: the unit came back each time.
            let after = try #require(try await Self.upload("open('output/answer.txt', 'w').write('fine')\n", name: "after", auth: auth, stack: stack, work: work))
            #expect(try await Self.waitForFinal([after.id], auth: auth, stack: stack, seconds: 60)[after.id]?.status == "succeeded")
        }
    }

    @Test func sigtermOnABusyUnitLosesNothing() async throws {
        try await SupervisedStack.with(brokerPort: 5703, units: 1, unitArguments: ["--unit-shutdown-grace", "4"]) { stack in
            let work = try TemporaryDirectory()
            let auth = try await Self.researcher(on: stack)
            let short = try #require(try await Self.upload("import time\ntime.sleep(2)\nopen('output/answer.txt', 'w').write('short')\n", name: "short", auth: auth, stack: stack, work: work))
            let long = try #require(try await Self.upload("import time\ntime.sleep(10)\nopen('output/answer.txt', 'w').write('long')\n", name: "long", auth: auth, stack: stack, work: work))
            let running = try await Self.waitUntil(running: [short.id, long.id], auth: auth, stack: stack)
            #expect(running, "both jobs should be running before the SIGTERM")
            // The short job finishes within the grace period; the long one is interrupted and runs again after the restart.
            stack.service("unit0").kill(SIGTERM)
            let final = try await Self.waitForFinal([short.id, long.id], auth: auth, stack: stack, seconds: 120)
            for (id, answer) in [(short.id, "short"), (long.id, "long")] {
                #expect(final[id]?.status == "succeeded", "\(answer): \(final[id]?.status ?? "never finished") \(final[id]?.reason ?? "")\n\(stack.logs.suffix(8000))")
                #expect(try await Self.result(id, auth: auth, stack: stack, work: work) == answer)
                #expect(stack.completions(of: id) == 1, "\(answer) ran to completion \(stack.completions(of: id)) times")
            }
            #expect(stack.service("unit0").logs.contains("interrupted by the unit's shutdown"), "the long job should have been interrupted")
        }
    }

    /// A unit that is gone for good: its Consumer hands back what it held and takes nothing more, so
    /// every job finishes on the other unit (before, the jobs it had taken waited for it forever).
    @Test func withOneUnitGoneForGoodEveryJobFinishesOnTheOther() async throws {
        try await SupervisedStack.with(brokerPort: 5704, units: 2) { stack in
            let work = try TemporaryDirectory()
            let auth = try await Self.researcher(on: stack)
            var jobs: [APIJob] = []
            for index in 0..<8 {
                jobs.append(try #require(try await Self.upload("import time\ntime.sleep(2)\nopen('output/answer.txt', 'w').write('\(index)')\n", name: "job\(index)", auth: auth, stack: stack, work: work)))
            }
            // Once both units run jobs (four at once), one of them dies and never comes back.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                var running = 0
                for job in jobs where (try? await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(job.id)", headers: auth)).decode(APIJob.self).status) == "running" {
                    running += 1
                }
                if running >= 3 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            stack.service("unit0").killForGood()
            let final = try await Self.waitForFinal(jobs.map(\.id), auth: auth, stack: stack, seconds: 120)
            for (index, job) in jobs.enumerated() {
                #expect(final[job.id]?.status == "succeeded", "job\(index): \(final[job.id]?.status ?? "never finished") \(final[job.id]?.reason ?? "")\n\(stack.logs.suffix(6000))")
                if final[job.id]?.status == "succeeded" {
                    #expect(try await Self.result(job.id, auth: auth, stack: stack, work: work) == "\(index)")
                }
            }
            #expect(stack.service("consumer0").logs.contains("handing its jobs back"), "\(stack.service("consumer0").logs.suffix(3000))")
        }
    }

    static func waitUntil(running ids: [String], auth: [(name: String, value: String)], stack: SupervisedStack) async throws -> Bool {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            var statuses: [String] = []
            for id in ids { statuses.append((try? await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)", headers: auth)).decode(APIJob.self).status) ?? "") }
            if statuses.allSatisfy({ $0 == "running" }) { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}
