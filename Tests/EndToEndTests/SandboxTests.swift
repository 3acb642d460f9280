import FerryTestSupport
import Foundation
import Testing

/// Hostile code.py against the real stack: every job is contained (see the README's security
/// section), each limit ends it with a reason that names the limit, nothing of it keeps running,
/// and Ferry goes on serving.
@Suite("Sandboxed jobs end to end", .runningStack)
struct SandboxTests {
    var stack: Stack { Stack.current! }

    /// Runs `code` as a job with `fields` (limits) and returns the finished job.
    private func run(_ code: String, as researcher: Researcher, fields: [String: String] = [:], in work: TemporaryDirectory) async throws -> APIJob {
        let name = "hostile\(UUID().uuidString.prefix(6).lowercased())"
        let zip = try Bundles.folder(name, files: ["code.py": code], in: work)
        let job = try await researcher.submit(zip, fileName: name + ".zip", fields: fields)
        return try await researcher.waitUntilFinished(job.id, seconds: 120)
    }

    private func processesOf(_ jobID: String) -> [String] { Stack.processes(of: jobID) }

    @Test func theNetworkIsUnreachableFromAJob() async throws {
        let work = try TemporaryDirectory()
        let brokerPort = Int(URLComponents(string: Stack.amqpURL)?.port ?? 5679)
        let backendPort = Int(URLComponents(string: stack.backendURL)?.port ?? 0)
        // The test itself reaches both, so a refusal inside the job is the sandbox's doing.
        #expect(try connects(to: brokerPort) && connects(to: backendPort))
        let probe = HostileJobs.networkProbe([
            "broker": ("127.0.0.1", brokerPort), "backend": ("127.0.0.1", backendPort), "outside-by-ip": ("1.1.1.1", 53), "outside-by-name": ("pypi.org", 443),
        ])
        let alice = try await Researcher.signUp("net", on: stack)
        let job = try await run(probe, as: alice, in: work)
        #expect(job.status == "succeeded", "\(job.reason ?? "")")
        let report = try #require(try await alice.result(job.id, into: work)["network.json"])
        let results = try JSONDecoder().decode([String: String].self, from: Data(report.utf8))
        #expect(results.count == 4)
        for (target, outcome) in results { #expect(outcome != "reached", "the job reached \(target)") }
    }

    @Test func aJobSeesNeitherOtherJobsNorFerrysFilesAndIsNotFerrysUser() async throws {
        let work = try TemporaryDirectory()
        let other = try await Researcher.signUp("victim", on: stack)
        let secret = try await run("open('output/secret.txt', 'w').write('secret of another job')\n", as: other, in: work)
        #expect(secret.status == "succeeded")

        let probe = HostileJobs.snoop(for: "secret of another job")
        let mallory = try await Researcher.signUp("snoop", on: stack)
        let job = try await run(probe, as: mallory, in: work)
        #expect(job.status == "succeeded", "\(job.reason ?? "")")
        let view = try JSONDecoder().decode(HostileJobs.View.self, from: Data(try #require(try await mallory.result(job.id, into: work)["view.json"]).utf8))
        #expect(view.uid != getuid() && view.uid != 0, "the job ran as Ferry's user or root")
        #expect(view.root.sorted() == HostileJobs.rootFolder)
        // Of the volume, only its own work folder (/job) and its Python environment (read-only) exist.
        let allowed = ["/job/", "/etc/", stack.sandbox.path + "/envs/"]
        for file in view.files {
            #expect(allowed.contains { file.hasPrefix($0) } && !file.contains(secret.id), "the job saw \(file)")
        }
        #expect(view.leaks.isEmpty, "the job read another job's or Ferry's files: \(view.leaks)")
        #expect(view.pids.count <= 3, "the job saw processes other than its own: \(view.pids)")
    }

    @Test func anEndlessLoopTimesOutAndLeavesNothingRunning() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("loop", on: stack)
        let job = try await run(HostileJobs.endlessLoop, as: alice, fields: ["timeLimit": "2"], in: work)
        #expect(job.status == "timed_out")
        #expect(job.reason?.contains("time limit of 2 s") == true)
        #expect(processesOf(job.id).isEmpty)
    }

    @Test func aMemoryHogIsKilledForItsMemory() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("hog", on: stack)
        let job = try await run(HostileJobs.memoryHog, as: alice, fields: ["memoryLimit": "64"], in: work)
        #expect(job.status == "killed")
        #expect(job.reason?.contains("memory") == true, "\(job.reason ?? "")")
        let manifest = try String(contentsOfFile: stack.data.file("jobs/\(job.id)/manifest.json"), encoding: .utf8)
        #expect(manifest.contains("peakMemoryBytes"))
        #expect(processesOf(job.id).isEmpty)
    }

    @Test func aForkBombCannotForkWithoutBoundAndFerryKeepsServing() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("forker", on: stack)
        async let bomb = run(HostileJobs.forkBomb, as: alice, fields: ["timeLimit": "30"], in: work)
        // Meanwhile an ordinary job runs to the end.
        let bystander = try await Researcher.signUp("bystander", on: stack)
        let normal = try await run("open('output/ok.txt', 'w').write('ok')\n", as: bystander, in: work)
        #expect(normal.status == "succeeded")
        let job = try await bomb
        #expect(["killed", "failed"].contains(job.status), "\(job.status): \(job.reason ?? "")")
        #expect(processesOf(job.id).isEmpty)
    }

    @Test func aDiskFillerIsKilledForItsOutputSize() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("filler", on: stack)
        let job = try await run(HostileJobs.diskFiller, as: alice, in: work)
        #expect(job.status == "killed")
        #expect(job.reason?.contains("output size") == true, "\(job.reason ?? "")")
        #expect(processesOf(job.id).isEmpty)
        // What it wrote leaves the volume with its work folder; its logs, manifest and result stay.
        #expect(!FileManager.default.fileExists(atPath: stack.sandbox.file("work/\(job.id)")), "the filler's work folder stayed on the volume")
        #expect(FileManager.default.fileExists(atPath: stack.data.file("jobs/\(job.id)/manifest.json")))
    }

    @Test func aJobCannotMakeNamespacesNorReachTheKernelsRiskierCalls() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("kernel", on: stack)
        let job = try await run(HostileJobs.kernelCalls, as: alice, in: work)
        let stderr = try await alice.log(job.id, stream: "stderr")
        #expect(job.status == "succeeded", "\(job.reason ?? "") \(stderr)")
        let report = try JSONDecoder().decode(HostileJobs.Calls.self, from: Data(try #require(try await alice.result(job.id, into: work)["calls.json"]).utf8))
        #expect(report.errors.count == 10)
        for (call, errno) in report.errors.sorted(by: { $0.key < $1.key }) {
            #expect(errno == EPERM, "\(call) answered errno \(errno), not EPERM")
        }
        #expect(report.forked == 7, "a job could not start a process")
        // stdin, stdout, stderr and the listing's own descriptor: nothing of the unit's.
        #expect(report.fds.count <= 4 && report.fds.prefix(3) == [0, 1, 2], "the job holds descriptors it was not given: \(report.fds)")
        #expect(processesOf(job.id).isEmpty)
    }

    @Test func aMillionEmptyFilesAreKilledForTheirNumber() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("inodes", on: stack)
        let job = try await run("import os\nos.makedirs('output/many')\nfor i in range(1000000):\n    open(f'output/many/{i}', 'w').close()\n", as: alice, in: work)
        #expect(job.status == "killed", "\(job.status): \(job.reason ?? "")")
        #expect(job.reason?.contains("20000 files and folders") == true, "\(job.reason ?? "")")
        // The result keeps what fits the limit.
        let files = try await alice.result(job.id, into: work)
        #expect(!files.isEmpty && files.count <= 20000, "\(files.count) files in the result")
        #expect(processesOf(job.id).isEmpty)
    }

    @Test func aTreeDeeperThanPathMaxIsKilledForItsOutputNotFerrysError() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("deep", on: stack)
        // 200 levels of 40-character names (8 kB of path), then 120 MiB at the bottom.
        let deep = """
            import os
            os.chdir("output")
            for level in range(200):
                os.mkdir("d" * 40)
                os.chdir("d" * 40)
            for i in range(120):
                open(f"{i}.bin", "wb").write(b"x" * (1 << 20))
            """
        let job = try await run(deep, as: alice, in: work)
        #expect(job.status == "killed", "\(job.status): \(job.reason ?? "")")
        #expect(job.reason?.contains("levels deep") == true || job.reason?.contains("output size") == true, "\(job.reason ?? "")")
        #expect(job.resultBytes != nil, "the partial output was not kept")
        #expect(processesOf(job.id).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: stack.sandbox.file("work/\(job.id)")), "a tree past PATH_MAX stayed on the volume")
    }

    /// Whoever can publish to the broker could queue a job message of their own; the Consumer checks
    /// every field and dead-letters one that does not check out, and the unit never sees it.
    @Test func aJobMessageThatDoesNotCheckOutIsDeadLetteredNotRun() async throws {
        let escape = "ferry-escape-\(UUID().uuidString)"
        let before = try await stack.messages(in: "ferry.dead-letters")
        let owner = UUID().uuidString.lowercased()
        let hostile = [
            #"{"version":1,"jobID":"../../../../../../tmp/\#(escape)","owner":"\#(owner)","project":"p","bundlePath":"bundles/x.zip","limits":{"timeLimitSeconds":60,"memoryLimitMiB":64},"submittedAt":"2026-12-01T10:00:00.000Z"}"#,
            #"{"version":1,"jobID":"\#(UUID().uuidString.lowercased())","owner":"\#(owner)","project":"p","bundlePath":"../../../etc/shadow","limits":{"timeLimitSeconds":60,"memoryLimitMiB":64},"submittedAt":"2026-12-01T10:00:00.000Z"}"#,
            #"{"version":1,"jobID":"\#(UUID().uuidString.lowercased())","owner":"\#(owner)","project":"p","bundlePath":"bundles/x.zip","limits":{"timeLimitSeconds":60,"memoryLimitMiB":-1},"submittedAt":"2026-12-01T10:00:00.000Z"}"#,
        ]
        for message in hostile { try await stack.publish(message, to: "ferry.jobs") }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try await stack.messages(in: "ferry.dead-letters") < before + hostile.count {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await stack.messages(in: "ferry.dead-letters") == before + hostile.count, "hostile messages were not dead-lettered")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(escape)"))
        // The unit still runs ordinary jobs.
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("after-hostile", on: stack)
        #expect(try await run("print('fine')\n", as: alice, in: work).status == "succeeded")
    }

    private func connects(to port: Int) throws -> Bool {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
