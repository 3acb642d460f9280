import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The compose stack scripts/test-compose builds and starts (`docker compose up -d --wait` on a
/// private Docker engine), as operators run it. The docker CLI reaches that engine through the
/// DOCKER_HOST and DOCKER_CONFIG scripts/test-compose exports. The tests reach it only through the published port,
/// like a researcher, and look at the shared volume only through `docker compose exec`.
final class ComposeStack: PublicAPI {
    let client = HTTPClient(configuration: .init(connectTimeout: .seconds(5), defaultTimeout: .seconds(120)))
    let backendURL: String
    let project: String
    let environmentFile: String

    /// The stack scripts/test-compose started; without it (FERRY_TEST_COMPOSE_URL unset) every test
    /// of the suite fails and says how to run it.
    static let shared: Result<ComposeStack, ComposeStackMissing> = {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["FERRY_TEST_COMPOSE_URL"], let project = environment["FERRY_TEST_COMPOSE_PROJECT"],
              let file = environment["FERRY_TEST_COMPOSE_ENV_FILE"] else {
            return .failure(ComposeStackMissing())
        }
        return .success(ComposeStack(backendURL: url, project: project, environmentFile: file))
    }()

    private init(backendURL: String, project: String, environmentFile: String) {
        self.backendURL = backendURL
        self.project = project
        self.environmentFile = environmentFile
    }

    /// `docker compose` for this stack, or for another project (`project`) from the same files or
    /// another version's (`file`), with settings that override the env file's (`settings`, as an
    /// operator's shell would).
    func compose(_ arguments: [String], project: String? = nil, file: String? = nil, settings: [String: String] = [:]) async throws -> ChildProcess.Outcome {
        try await ChildProcess.run(
            "/usr/bin/env",
            settings.map { "\($0.key)=\($0.value)" }.sorted()
                + ["/usr/bin/docker", "compose", "-p", project ?? self.project, "--env-file", environmentFile, "-f", file ?? Repository.root + "/docker-compose.yml"] + arguments,
            includingErrors: true
        )
    }

    /// A shell command in a service's container (as root, with the container's capabilities).
    func shell(in service: String, _ command: String) async throws -> String {
        let outcome = try await compose(["exec", "-T", service, "sh", "-c", command])
        try #require(outcome.status == 0, "\(service): `\(command)` failed: \(outcome.output)")
        return outcome.output
    }

    /// Every process in a unit's container that runs as ferry-job, zombies included, with its state
    /// and command line: once the jobs are over there must be none. A job's processes may hide their
    /// environment and command line, but not their owner.
    func jobProcesses(in unit: String) async throws -> [String] {
        let output = try await shell(in: unit, """
            uid=$(id -u ferry-job)
            for p in /proc/[0-9]*; do
              awk -v u="$uid" -v p="$p" '/^State:/ { s = $2 } /^Uid:/ && $2 == u { found = 1 } END { if (found) print p, s }' "$p/status" 2>/dev/null
            done; true
            """)
        return output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// The previous version's compose file, whose images scripts/test-compose built for the upgrade
    /// test (FERRY_TEST_COMPOSE_UPGRADE_FILE).
    static var previousVersionFile: String? { ProcessInfo.processInfo.environment["FERRY_TEST_COMPOSE_UPGRADE_FILE"] }

    /// `docker run --rm` of the slim base image (or `image`) with the given volumes (`name:path`) mounted.
    func withVolumes(_ volumes: [String], _ command: String, image: String = "debian:bookworm-slim") async throws -> ChildProcess.Outcome {
        try await ChildProcess.run(
            "/usr/bin/docker", ["run", "--rm", "--user", "0", "--entrypoint", "sh"] + volumes.flatMap { ["-v", $0] } + [image, "-c", command], includingErrors: true
        )
    }

    /// The id of the service's (first) container.
    func container(of service: String) async throws -> String {
        let found = try await compose(["ps", "-q", service])
        let id = found.output.split(separator: "\n").first.map(String.init) ?? ""
        guard found.status == 0, !id.isEmpty else { throw ComposeStackMissing(detail: "no container for \(service): \(found.output)") }
        return id
    }

    /// Kills the service's main process from the host with SIGKILL, as a crash would end it (a
    /// `docker kill` counts as stopping it by hand, and the restart policy would leave it stopped).
    func crash(_ service: String) async throws -> String {
        let id = try await container(of: service)
        let inspected = try await ChildProcess.run("/usr/bin/docker", ["inspect", "-f", "{{.State.Pid}}", id], includingErrors: true)
        guard let pid = Int32(inspected.output.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            throw ComposeStackMissing(detail: "no process for \(service): \(inspected.output)")
        }
        kill(pid, SIGKILL)
        return id
    }

    /// Waits until the container was restarted `after` times and its health check passes again.
    func waitUntilHealthy(_ id: String, restartsAbove count: Int, seconds: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let state = try await ChildProcess.run("/usr/bin/docker", ["inspect", "-f", "{{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id])
            let parts = state.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if parts.count == 2, let restarts = Int(parts[0]), restarts > count, parts[1] == "healthy" { return true }
            try await Task.sleep(for: .milliseconds(500))
        }
        return false
    }

    func restartCount(_ id: String) async throws -> Int {
        Int(try await ChildProcess.run("/usr/bin/docker", ["inspect", "-f", "{{.RestartCount}}", id]).output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// The last lines of every service's log (read only when a test fails).
    var logs: String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker")
        process.arguments = ["compose", "-p", project, "--env-file", environmentFile, "-f", Repository.root + "/docker-compose.yml", "logs", "--no-color", "--tail", "60"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return "(docker compose logs did not start)" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Another stack made from the same files (a restored backup), reached on its own port.
struct RestoredStack: PublicAPI {
    let client: HTTPClient
    let backendURL: String
    let logs: String
}

struct ComposeStackMissing: Error, CustomStringConvertible {
    var detail: String?
    var description: String {
        detail ?? "no compose stack: scripts/test-compose builds the images, starts the stack and runs this suite (FERRY_TEST_COMPOSE_URL is unset)"
    }
}

@Suite("The compose stack, as operators run it", .serialized)
struct ComposeStackTests {
    let stack: ComposeStack

    init() throws {
        stack = try ComposeStack.shared.get()
    }

    private func post(_ researcher: Researcher, _ path: String) async throws -> HTTPResponse {
        try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + path, headers: researcher.auth))
    }

    /// Register, upload a project whose requirements come from PyPI (installed in the unit's build
    /// sandbox inside its container), watch it succeed, download the result and read the log.
    @Test func aProjectWithPinnedRequirementsRunsAndItsResultAndLogComeBack() async throws {
        let work = try TemporaryDirectory()
        let ada = try await Researcher.signUp("compose", on: stack)
        let code = "import six\nprint('six', six.__version__)\nopen('output/answer.txt', 'w').write(str(6 * 7))\n"
        let zip = try Bundles.folder("pinned", files: ["code.py": code, "requirements.txt": "six==1.16.0\n"], in: work)
        let job = try await ada.submit(zip, fileName: "pinned.zip")
        let finished = try await ada.waitUntilFinished(job.id, seconds: 600)
        #expect(finished.status == "succeeded", "\(finished)\n\(stack.logs)")
        #expect(try await ada.result(job.id, into: work)["answer.txt"] == "42")
        #expect(try await ada.log(job.id, stream: "stdout").contains("six 1.16.0"))
    }

    /// A long job is canceled while it runs; a finished one runs again on request.
    @Test func aRunningJobIsCanceledAndAFinishedOneRunsAgain() async throws {
        let work = try TemporaryDirectory()
        let bo = try await Researcher.signUp("compose-cancel", on: stack)
        let long = try await bo.submit(try Bundles.folder("long", files: ["code.py": "import time\ntime.sleep(600)\n"], in: work), fileName: "long.zip")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, try await bo.job(long.id).decode(APIJob.self).status != "running" {
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(try await bo.job(long.id).decode(APIJob.self).status == "running")
        #expect(try await post(bo, "/api/v1/jobs/\(long.id)/cancel").status == 202)
        #expect(try await bo.waitUntilFinished(long.id, seconds: 60).status == "canceled")

        let code = "import uuid\nopen('output/run.txt', 'w').write(str(uuid.uuid4()))\n"
        let first = try await bo.submit(try Bundles.folder("again", files: ["code.py": code], in: work), fileName: "again.zip")
        #expect(try await bo.waitUntilFinished(first.id).status == "succeeded")
        let again = try await post(bo, "/api/v1/jobs/\(first.id)/rerun").decode(APIJob.self)
        #expect(try await bo.waitUntilFinished(again.id).status == "succeeded")
        let runs = [try await bo.result(first.id, into: work)["run.txt"], try await bo.result(again.id, into: work)["run.txt"]]
        #expect(runs[0] != nil && runs[1] != nil && runs[0] != runs[1], "the second job must really run again")
    }

    /// The Backend runs as uid 10001 and the units as root; deleting a job removes its files from the
    /// shared volume all the same, as both containers see it.
    @Test func aDeletedJobsFilesAreGoneFromTheSharedVolume() async throws {
        let work = try TemporaryDirectory()
        let cy = try await Researcher.signUp("compose-delete", on: stack)
        let job = try await cy.submit(try Bundles.folder("gone", files: ["code.py": "print('bye')\n"], in: work), fileName: "gone.zip")
        #expect(try await cy.waitUntilFinished(job.id).status == "succeeded")
        let paths = ["jobs/\(job.id)", "results/\(job.id).zip", "bundles/\(job.id).zip"].map { "/var/lib/ferry/data/" + $0 }
        let before = try await stack.compose(["exec", "-T", "backend", "ls", "-d"] + paths)
        #expect(before.status == 0, "the job's files should be there before the delete: \(before.output)")

        let deleted = try await stack.client.execute(HTTPRequest(method: "DELETE", url: stack.backendURL + "/api/v1/jobs/\(job.id)", headers: cy.auth))
        #expect(deleted.status == 204, "\(String(decoding: deleted.body, as: UTF8.self))")
        #expect(try await cy.job(job.id).status == 404)
        for service in ["backend", "processing-unit-1"] {
            for path in paths {
                let left = try await stack.compose(["exec", "-T", service, "test", "-e", path])
                #expect(left.status == 1, "\(path) is still there, as \(service) sees the volume: \(left.output)")
            }
        }
    }

    /// Every kind of service crashes once (SIGKILL from the host) while jobs wait and run: the restart
    /// policy brings each back to healthy, and every job accepted before ends with its right result.
    @Test func aServiceThatCrashesComesBackAndNoJobIsLost() async throws {
        let work = try TemporaryDirectory()
        let fay = try await Researcher.signUp("compose-crash", on: stack)
        var jobs: [(id: String, answer: String)] = []
        for index in 0..<6 {
            let code = "import time\ntime.sleep(3)\nopen('output/answer.txt', 'w').write('\(index * index)')\n"
            let job = try await fay.submit(try Bundles.folder("crash\(index)", files: ["code.py": code], in: work), fileName: "crash\(index).zip")
            jobs.append((job.id, "\(index * index)"))
        }
        for service in ["processing-unit-1", "consumer-1", "rabbitmq", "producer", "backend", "frontend"] {
            let before = try await stack.restartCount(try await stack.container(of: service))
            let id = try await stack.crash(service)
            #expect(try await stack.waitUntilHealthy(id, restartsAbove: before, seconds: 180), "\(service) did not come back healthy after a crash\n\(stack.logs)")
        }
        for job in jobs {
            let finished = try await Self.waitThroughOutages(fay, job.id, seconds: 300)
            #expect(finished?.status == "succeeded", "job \(job.id): \(String(describing: finished))\n\(stack.logs)")
            if finished?.status == "succeeded" { #expect(try await fay.result(job.id, into: work)["answer.txt"] == job.answer) }
        }
    }

    /// `docker compose down` and `up` again, the volumes kept: the account, its token, its jobs and
    /// their results are all still there, and a job that was waiting in the queue (no Consumer was
    /// taking jobs) runs after the broker's container was made anew.
    @Test func downThenUpKeepsAccountsJobsAndResults() async throws {
        let work = try TemporaryDirectory()
        let gus = try await Researcher.signUp("compose-keep", on: stack)
        let job = try await gus.submit(try Bundles.folder("kept", files: ["code.py": "open('output/answer.txt', 'w').write('kept')\n"], in: work), fileName: "kept.zip")
        #expect(try await gus.waitUntilFinished(job.id).status == "succeeded")
        #expect(try await stack.compose(["stop", "consumer-1", "consumer-2"]).status == 0)
        let waiting = try await gus.submit(try Bundles.folder("waiting", files: ["code.py": "open('output/answer.txt', 'w').write('waited')\n"], in: work), fileName: "waiting.zip")
        try await Task.sleep(for: .seconds(2))
        #expect(try await gus.job(waiting.id).decode(APIJob.self).status == "queued")
        let down = try await stack.compose(["down"])
        try #require(down.status == 0, "docker compose down: \(down.output)")
        let up = try await stack.compose(["up", "-d", "--wait", "--wait-timeout", "300"])
        try #require(up.status == 0, "docker compose up: \(up.output)\n\(stack.logs)")
        let after = try await Self.waitThroughOutages(gus, job.id, seconds: 60)
        #expect(after?.status == "succeeded", "the job after down and up: \(String(describing: after))")
        #expect(try await gus.result(job.id, into: work)["answer.txt"] == "kept")
        #expect(try await gus.jobs().jobs.contains { $0.id == job.id })
        let waited = try await Self.waitThroughOutages(gus, waiting.id, seconds: 120)
        #expect(waited?.status == "succeeded", "the job that waited in the queue through down and up: \(String(describing: waited))")
        if waited?.status == "succeeded" { #expect(try await gus.result(waiting.id, into: work)["answer.txt"] == "waited") }
    }

    /// The README's backup (stop the Backend, copy `ferry.sqlite` from `ferry-db` and `bundles/`
    /// and `results/` from `ferry-data`) restored into the volumes of a fresh stack, which then
    /// serves the same account, job and result on a port of its own.
    @Test func aBackupRestoredIntoAFreshStackServesTheSameJobs() async throws {
        let work = try TemporaryDirectory()
        let hal = try await Researcher.signUp("compose-backup", on: stack)
        let job = try await hal.submit(try Bundles.folder("saved", files: ["code.py": "open('output/answer.txt', 'w').write('saved')\n"], in: work), fileName: "saved.zip")
        #expect(try await hal.waitUntilFinished(job.id).status == "succeeded")

        let backup = try TemporaryDirectory()
        #expect(try await stack.compose(["stop", "backend"]).status == 0)
        let saved = try await stack.withVolumes(
            ["\(stack.project)_ferry-db:/db:ro", "\(stack.project)_ferry-data:/data:ro", "\(backup.path):/backup"],
            "cp -a /db/ferry.sqlite /backup/ && tar -C /data -cf /backup/data.tar bundles results"
        )
        #expect(try await stack.compose(["start", "backend"]).status == 0)
        try #require(saved.status == 0, "taking the backup: \(saved.output)")

        let fresh = stack.project + "-restored"
        let port = try LocalSocket.unusedPort()
        defer { Task { _ = try? await stack.compose(["down", "-v"], project: fresh) } }
        let restored = try await stack.withVolumes(
            ["\(fresh)_ferry-db:/db", "\(fresh)_ferry-data:/data", "\(backup.path):/backup:ro"],
            "cp -a /backup/ferry.sqlite /db/ && chown 10001:10001 /db /data && tar -C /data -xpf /backup/data.tar"
        )
        try #require(restored.status == 0, "restoring the backup: \(restored.output)")
        let up = try await stack.compose(["up", "-d", "--wait", "--wait-timeout", "300"], project: fresh, settings: ["FERRY_PORT": "\(port)"])
        if up.status != 0 {
            let said = try? await stack.compose(["logs", "--no-color", "--tail", "40"], project: fresh, settings: ["FERRY_PORT": "\(port)"])
            Issue.record("the restored stack did not start: \(up.output)\nits services said:\n\(said?.output ?? "")")
            return
        }

        let there = Researcher(stack: RestoredStack(client: stack.client, backendURL: "http://127.0.0.1:\(port)", logs: ""), token: hal.token)
        let found = try await there.job(job.id)
        #expect(found.status == 200, "the restored stack does not know the job: \(String(decoding: found.body, as: UTF8.self))")
        #expect(try found.decode(APIJob.self).status == "succeeded")
        #expect(try await there.result(job.id, into: work)["answer.txt"] == "saved")
        #expect(try await stack.compose(["down", "-v"], project: fresh).status == 0)
    }

    /// The networks keep apart what has no business together, on the running stack: from inside
    /// each container, a TCP connection to each other service by its compose name succeeds only
    /// where the two talk (the Frontend to the Backend alone; the broker for the Backend, the Producer
    /// and the Consumers; a unit for its own Consumer alone).
    @Test func aContainerReachesOnlyTheServicesItTalksTo() async throws {
        let checks: [(from: String, to: String, port: Int, reaches: Bool)] = [
            ("frontend", "backend", 8081, true),
            ("frontend", "rabbitmq", 5672, false), ("frontend", "producer", 8082, false),
            ("frontend", "consumer-1", 8083, false), ("frontend", "processing-unit-1", 8084, false),
            ("backend", "rabbitmq", 5672, true), ("backend", "producer", 8082, true), ("backend", "consumer-1", 8083, true),
            ("backend", "processing-unit-1", 8084, false), ("backend", "processing-unit-2", 8084, false),
            ("producer", "rabbitmq", 5672, true), ("producer", "processing-unit-1", 8084, false),
            ("consumer-1", "rabbitmq", 5672, true), ("consumer-1", "processing-unit-1", 8084, true),
            ("consumer-1", "processing-unit-2", 8084, false), ("consumer-2", "processing-unit-1", 8084, false),
            ("processing-unit-1", "consumer-1", 8083, true),
            ("processing-unit-1", "rabbitmq", 5672, false), ("processing-unit-1", "backend", 8081, false),
            ("processing-unit-1", "producer", 8082, false), ("processing-unit-1", "processing-unit-2", 8084, false),
        ]
        for check in checks {
            // bash's /dev/tcp: every image has bash; a name that is not on a shared network does not resolve.
            let tried = try await stack.compose(["exec", "-T", check.from, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/$0/$1", check.to, "\(check.port)"])
            #expect((tried.status == 0) == check.reaches, "\(check.from) → \(check.to):\(check.port) should \(check.reaches ? "connect" : "fail"): exit \(tried.status) \(tried.output)")
        }
    }

    /// The safety suite's hostile bundles, uploaded through the published port: each is refused
    /// with its code before anything is queued.
    @Test func everyHostileBundleIsRefusedAtTheDoor() async throws {
        let eve = try await Researcher.signUp("compose-bundles", on: stack)
        let cases = HostileBundles.archives.map { ($0.label, $0.code, try? HostileBundles.zip($0.build)) }
            + HostileBundles.requirements.map { ($0.text, $0.code, try? HostileBundles.withRequirements($0.text)) }
        for (label, code, path) in cases {
            let zip = try #require(path)
            defer { try? FileManager.default.removeItem(atPath: zip) }
            let response = try await eve.upload(zip, fileName: "p.zip")
            #expect(response.status == 422 && String(decoding: response.body, as: UTF8.self).contains(code), "\(label): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        #expect(try await eve.jobs().jobs.isEmpty, "a refused bundle became a job")
    }

    /// The safety suite's hostile jobs, run in the unit containers: no network (not even the unit's
    /// own Consumer, which the unit itself reaches), nothing of the volume, the token or other jobs
    /// in sight, the riskier system calls refused, and each limit ending its job with the limit's
    /// reason and nothing of it left running.
    @Test func hostileJobsAreContainedInTheUnitContainers() async throws {
        let work = try TemporaryDirectory()
        let mallory = try await Researcher.signUp("compose-hostile", on: stack)
        func run(_ name: String, _ code: String, fields: [String: String] = [:]) async throws -> APIJob {
            let job = try await mallory.submit(try Bundles.folder(name, files: ["code.py": code], in: work), fileName: name + ".zip", fields: fields)
            return try await mallory.waitUntilFinished(job.id, seconds: 180)
        }
        let consumer = try await ChildProcess.run("/usr/bin/docker", ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", try await stack.container(of: "consumer-1")])
        let consumerIP = try #require(consumer.output.split(separator: " ").first.map(String.init), "\(consumer.output)")
        let secret = try await run("victim", "open('output/secret.txt', 'w').write('secret of another job')\n")
        #expect(secret.status == "succeeded")

        async let network = run("net", HostileJobs.networkProbe([
            "consumer-by-name": ("consumer-1", 8083), "consumer-by-ip": (consumerIP, 8083), "broker": ("rabbitmq", 5672),
            "backend": ("backend", 8081), "outside-by-ip": ("1.1.1.1", 53), "outside-by-name": ("pypi.org", 443),
        ]))
        async let snoop = run("snoop", HostileJobs.snoop(for: "secret of another job"))
        async let calls = run("kernel", HostileJobs.kernelCalls)
        async let loop = run("loop", HostileJobs.endlessLoop, fields: ["timeLimit": "2"])
        async let hog = run("hog", HostileJobs.memoryHog, fields: ["memoryLimit": "64"])
        async let bomb = run("bomb", HostileJobs.forkBomb, fields: ["timeLimit": "30"])
        async let filler = run("filler", HostileJobs.diskFiller)

        let reached = try await network
        #expect(reached.status == "succeeded", "\(reached.reason ?? "")")
        let results = try JSONDecoder().decode([String: String].self, from: Data(try #require(try await mallory.result(reached.id, into: work)["network.json"]).utf8))
        #expect(results.count == 6 && results.values.allSatisfy { $0 != "reached" }, "a job reached \(results)")

        let seen = try await snoop
        #expect(seen.status == "succeeded", "\(seen.reason ?? "")")
        let view = try JSONDecoder().decode(HostileJobs.View.self, from: Data(try #require(try await mallory.result(seen.id, into: work)["view.json"]).utf8))
        // /var only as the way to the job's environment, bound at its own path under the sandbox root.
        #expect(view.uid != 0 && view.root.sorted() == (HostileJobs.rootFolder + ["var"]).sorted(), "uid \(view.uid), / holds \(view.root)")
        for file in view.files {
            #expect(["/job/", "/etc/", "/var/lib/ferry-unit/envs/"].contains { file.hasPrefix($0) } && !file.contains(secret.id) && !file.contains("ferry-secrets"), "the job saw \(file)")
        }
        #expect(view.leaks.isEmpty && view.pids.count <= 3, "leaks \(view.leaks), processes \(view.pids)")

        let called = try await calls
        let report = try JSONDecoder().decode(HostileJobs.Calls.self, from: Data(try #require(try await mallory.result(called.id, into: work)["calls.json"]).utf8))
        #expect(report.errors.count == 10 && report.errors.values.allSatisfy { $0 == EPERM } && report.forked == 7, "\(report)")

        let looped = try await loop
        #expect(looped.status == "timed_out" && looped.reason?.contains("time limit of 2 s") == true, "\(looped)")
        let hogged = try await hog
        #expect(hogged.status == "killed" && hogged.reason?.contains("memory") == true, "\(hogged)")
        let manifest = try await stack.compose(["exec", "-T", "backend", "cat", "/var/lib/ferry/data/jobs/\(hogged.id)/manifest.json"])
        #expect(manifest.output.contains("peakMemoryBytes"), "\(manifest.output)")
        let bombed = try await bomb
        // A fork bomb ends at whichever limit it reaches first: its forks refused (failed), memory
        // (killed) or time (timed_out, when the init reaps its dead children fast enough).
        #expect(["killed", "failed", "timed_out"].contains(bombed.status), "\(bombed)")
        let filled = try await filler
        #expect(filled.status == "killed" && filled.reason?.contains("output size") == true, "\(filled)")
        for job in [looped, hogged, bombed, filled, called] {
            #expect(Stack.processes(of: job.id).isEmpty, "\(job.id) left processes running")
        }
        // Nor a zombie: a killed sandbox's processes go to the container's PID 1, which must reap them.
        for unit in ["processing-unit-1", "processing-unit-2"] {
            let left = try await stack.jobProcesses(in: unit)
            #expect(left.isEmpty, "\(unit) still holds job processes: \(left)")
        }
    }

    /// The browser test (Tests/Browser/browser_test.py, headless Chromium) against the compose
    /// stack's published port, with the setup token an operator reads as the README says; then the
    /// administrator it made sees every unit answering on the admin page, which the Backend asks
    /// through each unit's Consumer (it cannot reach the units).
    @Test func theBrowserTestPassesAndTheAdminPageSeesTheUnits() async throws {
        let python = Repository.root + "/.build/test-venv/bin/python"
        for (tool, fix) in [(python, "run scripts/test, which makes .build/test-venv with selenium"), ("/usr/bin/chromium", "apt-get install chromium"), ("/usr/bin/chromedriver", "apt-get install chromium-driver")] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: \(fix)")
        }
        let token = try await stack.compose(["exec", "-T", "backend", "cat", "/var/lib/ferry/db/setup-token"])
        try #require(token.status == 0, "the README's way to read the setup token failed: \(token.output)")
        let artifacts = Repository.root + "/.build/test-artifacts/browser-compose"
        try? FileManager.default.removeItem(atPath: artifacts)
        let run = try await ChildProcess.run(
            python, [Repository.root + "/Tests/Browser/browser_test.py", "--url", stack.backendURL, "--artifacts", artifacts,
                     "--setup-token", token.output.trimmingCharacters(in: .whitespacesAndNewlines)],
            includingErrors: true
        )
        #expect(run.status == 0, "the browser test failed against the compose stack (screenshots in \(artifacts)):\n\(run.output)\n\(stack.logs)")

        struct Login: Decodable { var token: String }
        struct Overview: Decodable {
            struct Unit: Decodable { var name: String; var answering: Bool?; var problem: String? }
            var units: [Unit]
        }
        let login = try await stack.client.json("POST", stack.backendURL + "/api/v1/auth/login", body: ["username": "lab-admin", "password": "a long enough password"]).decode(Login.self)
        let overview = try await stack.client.execute(HTTPRequest(method: "GET", url: stack.backendURL + "/api/v1/admin/overview", headers: [("Authorization", "Bearer \(login.token)")]))
        try #require(overview.status == 200, "\(String(decoding: overview.body, as: UTF8.self))")
        let units = try overview.decode(Overview.self).units
        #expect(!units.isEmpty && units.allSatisfy { $0.answering == true && $0.name.hasSuffix(":8083/unit") }, "\(units)")
    }

    /// The README's upgrade on a stack of the previous version (its images built by
    /// scripts/test-compose from that commit): with a job finished and one running, the current
    /// images are built and `up -d` replaces every container. The Backend migrates the database
    /// in place (its schema version rises), the finished job's result is still there, and the
    /// running one ends succeeded with its own result.
    @Test func anUpgradeMigratesTheDatabaseAndKeepsRunningJobsResults() async throws {
        let previous = try #require(ComposeStack.previousVersionFile, "scripts/test-compose builds the previous version's images and sets FERRY_TEST_COMPOSE_UPGRADE_FILE")
        let project = stack.project + "-upgrade"
        let settings = ["FERRY_PORT": "\(try LocalSocket.unusedPort())"]
        defer { Task { _ = try? await stack.compose(["down", "-v", "--remove-orphans"], project: project, settings: settings) } }
        func schemaVersion() async throws -> Int? {
            let read = try await stack.withVolumes(
                ["\(project)_ferry-db:/db"], "python3 -c \"import sqlite3; print(sqlite3.connect('/db/ferry.sqlite').execute('PRAGMA user_version').fetchone()[0])\"",
                image: "\(project)-processing-unit-1"
            )
            return Int(read.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let old = try await stack.compose(["up", "-d", "--wait", "--wait-timeout", "300"], project: project, file: previous, settings: settings)
        try #require(old.status == 0, "the previous version did not start: \(old.output)")
        let there = try await Researcher.signUp("compose-upgrade", on: RestoredStack(client: stack.client, backendURL: "http://127.0.0.1:\(settings["FERRY_PORT"]!)", logs: ""))
        let work = try TemporaryDirectory()
        let done = try await there.submit(try Bundles.folder("before", files: ["code.py": "open('output/answer.txt', 'w').write('before')\n"], in: work), fileName: "before.zip")
        #expect(try await there.waitUntilFinished(done.id).status == "succeeded")
        let long = "import time\ntime.sleep(15)\nopen('output/answer.txt', 'w').write('through the upgrade')\n"
        let running = try await there.submit(try Bundles.folder("during", files: ["code.py": long], in: work), fileName: "during.zip")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, try await there.job(running.id).decode(APIJob.self).status != "running" { try await Task.sleep(for: .milliseconds(250)) }
        #expect(try await there.job(running.id).decode(APIJob.self).status == "running")
        let before = try await schemaVersion()

        // The upgrade as the README says: build the changed images, then up -d.
        let built = try await stack.compose(["build", "--quiet"], project: project, settings: settings)
        try #require(built.status == 0, "building the new images: \(built.output)")
        let up = try await stack.compose(["up", "-d", "--wait", "--wait-timeout", "300", "--remove-orphans"], project: project, settings: settings)
        try #require(up.status == 0, "the upgraded stack did not start: \(up.output)")

        let after = try await schemaVersion()
        #expect(before != nil && after != nil && after! > before!, "the schema version went from \(String(describing: before)) to \(String(describing: after))")
        #expect(try await there.result(done.id, into: work)["answer.txt"] == "before")
        let finished = try await Self.waitThroughOutages(there, running.id, seconds: 240)
        if finished?.status != "succeeded" {
            let said = try? await stack.compose(["logs", "--no-color", "--tail", "60"], project: project, settings: settings)
            Issue.record("the job that ran during the upgrade: \(String(describing: finished)); now \(String(decoding: (try? await there.job(running.id).body) ?? [], as: UTF8.self))\nthe services said:\n\(said?.output ?? "")")
        }
        #expect(try await there.result(running.id, into: work)["answer.txt"] == "through the upgrade")
        #expect(try await stack.compose(["down", "-v", "--remove-orphans"], project: project, settings: settings).status == 0)
    }

    /// Polls a job until it has finished, also while the Frontend or the Backend is restarting
    /// (those polls fail and are tried again); nil when it did not finish in time.
    static func waitThroughOutages(_ researcher: Researcher, _ id: String, seconds: Double) async throws -> APIJob? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let response = try? await researcher.job(id), response.status == 200, let job = try? response.decode(APIJob.self),
               ["succeeded", "failed", "timed_out", "killed", "canceled", "error"].contains(job.status) {
                return job
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }
}
