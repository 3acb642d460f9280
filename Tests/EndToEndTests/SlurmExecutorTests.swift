import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The Slurm executor on a real cluster: scripts/test starts a private one-node Slurm with
/// accounting (scripts/lib/slurm.sh) and names it in SLURM_CONF. The stack's unit hands every job to
/// it (`unit.executor=slurm`), two at a time, each asking for both of the node's CPUs, so that a
/// second job waits in Slurm's queue for Resources. Everything is driven through the public API.
@Suite("Slurm executor end to end", .serialized, .slurmStack)
struct SlurmExecutorTests {
    var stack: Stack { Stack.current! }

    /// The pipeline suite's bundles, unchanged, give the same results and statuses on the cluster.
    @Test func pipelineBundlesGiveTheSameResultsAsOnTheUnit() async throws {
        let pipeline = PipelineTests()
        try await pipeline.folderBundleRunsAndItsOutputComesBack()
        try await pipeline.contentsZipIsNamedAfterTheUploadAndRunsFromARawBody()
        try await pipeline.macOSFinderZipIgnoresTheLitter()
        try await pipeline.pinnedRequirementsFromPyPIInUTF16AreInstalledAndCached()
        try await pipeline.aRequirementThatCannotInstallSaysWhyOnTheJob()
        try await pipeline.bundleWithoutOutputFolderGetsOne()
        try await pipeline.nonZeroExitEndsFailedWithItsCodeStderrAndPartialOutput()
        try await pipeline.oneResearcherCannotSeeAnothersJob()
    }

    /// The manifest names the cluster's job, and code.py ran on the node in Ferry's sandbox: as the
    /// job user, without network, without Ferry's volume.
    @Test func codeRunsOnTheNodeInTheSandbox() async throws {
        let work = try TemporaryDirectory()
        let code = """
        import json, os, socket
        s = socket.socket()
        try:
            s.connect(('127.0.0.1', \(URL(string: stack.backendURL)!.port!)))
            network = 'reached'
        except OSError:
            network = 'none'
        json.dump({'uid': os.getuid(), 'network': network, 'volume': os.path.exists(\(String(reflecting: stack.data.path))),
                   'root': sorted(os.listdir('/')), 'slurm': [k for k in os.environ if k.startswith('SLURM')]}, open('output/where.json', 'w'))
        """
        let ivan = try await Researcher.signUp("ivan", on: stack)
        let job = try await ivan.submit(try Bundles.folder("where", files: ["code.py": code], in: work), fileName: "where.zip")
        let done = try await ivan.waitUntilFinished(job.id)
        let stderr = try await ivan.log(job.id, stream: "stderr")
        #expect(done.status == "succeeded", "\(done.reason ?? "") \(stderr)")
        let seen = try JSONSerialization.jsonObject(with: Data(try #require(try await ivan.result(job.id, into: work)["where.json"]).utf8)) as? [String: Any]
        #expect(seen?["uid"] as? Int == Int(try Self.uid(of: "ferry-job")))
        #expect(seen?["network"] as? String == "none")
        #expect(seen?["volume"] as? Bool == false)
        #expect(seen?["root"] as? [String] == HostileJobs.rootFolder)
        #expect(seen?["slurm"] as? [String] == [], "the submitter's or Slurm's environment reached code.py")
        let manifest = try String(contentsOfFile: stack.data.file("jobs/\(job.id)/manifest.json"), encoding: .utf8)
        // Slurm's accounting has a finished job a moment after the controller.
        try await Self.eventually { try !Self.slurmJobs(named: job.id).isEmpty }
        let slurmID = try #require(Self.slurmJobs(named: job.id).first)
        #expect(manifest.contains(#""jobID" : "\#(slurmID.id)""#), "\(manifest)")
        #expect(manifest.contains(#""scheduler" : "slurm""#))
    }

    @Test func aTimeLimitEndsTimedOutToTheSecond() async throws {
        let work = try TemporaryDirectory()
        let judy = try await Researcher.signUp("judy", on: stack)
        let job = try await judy.submit(
            try Bundles.folder("slow", files: ["code.py": "import time\nprint('begun', flush=True)\ntime.sleep(120)\n"], in: work), fileName: "slow.zip",
            fields: ["timeLimit": "4"]
        )
        let started = Date()
        let done = try await judy.waitUntilFinished(job.id, seconds: 60)
        #expect(done.status == "timed_out", "\(done.reason ?? "")")
        #expect(done.reason?.contains("time limit of 4 s") == true)
        // The job's own limit, not Slurm's minute-granular one.
        #expect(Date().timeIntervalSince(started) < 40)
        #expect(try await judy.log(job.id, stream: "stdout") == "begun\n")
    }

    @Test func aMemoryHogIsKilledForItsMemory() async throws {
        let work = try TemporaryDirectory()
        let mallory = try await Researcher.signUp("mallory", on: stack)
        let job = try await mallory.submit(
            try Bundles.folder("hog", files: ["code.py": HostileJobs.memoryHog], in: work), fileName: "hog.zip", fields: ["memoryLimit": "64"]
        )
        let done = try await mallory.waitUntilFinished(job.id, seconds: 120)
        #expect(done.status == "killed")
        #expect(done.reason?.contains("memory") == true && done.reason?.contains("64 MiB") == true, "\(done.reason ?? "")")
        try await Self.eventually { try Self.slurmJobs(named: job.id).map(\.state) == ["OUT_OF_MEMORY"] }
        // The peak from the job's cgroup, not Slurm's sampled MaxRSS (about 1 MB for such a job).
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stack.data.file("jobs/\(job.id)/manifest.json")))) as? [String: Any]
        let peak = try #require(manifest?["peakMemoryBytes"] as? Int, "no peak memory in the manifest")
        #expect(peak >= 48 << 20 && peak <= 80 << 20, "peak \(peak)")
    }

    /// A burst of jobs: the unit keeps at most its two slots' worth on the cluster at once (from
    /// Slurm's own accounting), and each ran exactly once.
    @Test func aBurstKeepsToTheUnitsSlotsOnTheCluster() async throws {
        let work = try TemporaryDirectory()
        let kim = try await Researcher.signUp("kim", on: stack)
        var jobs: [APIJob] = []
        for index in 0..<5 {
            let zip = try Bundles.folder("burst\(index)", files: ["code.py": "import time\ntime.sleep(2)\nopen('output/n.txt', 'w').write('\(index)')\n"], in: work)
            jobs.append(try await kim.submit(zip, fileName: "burst\(index).zip"))
        }
        for (index, job) in jobs.enumerated() {
            let done = try await kim.waitUntilFinished(job.id, seconds: 180)
            #expect(done.status == "succeeded", "\(done.reason ?? "")")
            #expect(try await kim.result(job.id, into: work) == ["n.txt": "\(index)"])
        }
        var spans: [(Date, Date)] = []
        try await Self.eventually { try jobs.allSatisfy { try !Self.slurmJobs(named: $0.id).isEmpty } }
        for job in jobs {
            let runs = try Self.slurmJobs(named: job.id)
            #expect(runs.count == 1, "job \(job.id) ran \(runs.count) times on the cluster")
            if let run = runs.first { spans.append((run.submitted, run.ended)) }
        }
        // Most jobs in the cluster at once: submitted and not yet ended.
        let most = spans.map { span in spans.filter { $0.0 <= span.0 && $0.1 > span.0 }.count }.max() ?? 0
        #expect(most <= 2 && most >= 1, "\(most) jobs of a 2-slot unit were in the cluster at once")
    }

    /// A sweep on the cluster is one Slurm job array: each run is its task (`<array>_<index>`),
    /// given its parameters on the node; the array carries the sweep's throttle (`%1`), and the
    /// cluster never ran two of its runs at once (sacct).
    @Test func aSweepIsOneJobArrayWhoseTasksGetTheirParametersWithinItsThrottle() async throws {
        let work = try TemporaryDirectory()
        let lou = try await Researcher.signUp("lou", on: stack)
        // Each run lasts over a second: sacct's times are whole seconds, and a run that started and
        // ended within one would not overlap even itself.
        let code = "import json, os, time\ntime.sleep(1.2)\np = json.load(open('params.json'))\nopen('output/n.txt', 'w').write(f\"{p['n']} {os.environ['FERRY_PARAM_N']} {os.environ['FERRY_RUN_INDEX']}\")\nprint('run', os.environ['FERRY_RUN_INDEX'])\n"
        let response = try await lou.upload(
            try Bundles.folder("sweep", files: ["code.py": code], in: work), fileName: "sweep.zip", fields: ["grid": "n=5,6,7", "throttle": "1"], path: "/api/v1/sweeps"
        )
        try #require(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        let sweep = try response.decode(APISweep.self)
        var tasks: [String] = []
        for run in sweep.runs {
            let done = try await lou.waitUntilFinished(run.job.id, seconds: 180)
            #expect(done.status == "succeeded", "\(done.reason ?? "")")
            #expect(try await lou.result(run.job.id, into: work) == ["n.txt": "\(run.index + 4) \(run.index + 4) \(run.index)"])
            #expect(try await lou.log(run.job.id, stream: "stdout") == "run \(run.index)\n", "the task writes its run's own log")
            tasks.append(try clusterJob(of: run.job.id))
        }
        let array = try #require(tasks.first?.split(separator: "_").first.map(String.init))
        #expect(tasks == sweep.runs.map { "\(array)_\($0.index)" }, "each run is its own task of one array")
        #expect(try Self.slurm("scontrol", ["show", "job", "-o", "\(array)_1"]).contains("ArrayTaskThrottle=1"))
        #expect(try Self.slurm("squeue", ["-h", "--states=all", "-n", "ferry-sweep-\(sweep.id)", "-o", "%i"]).split(separator: "\n").allSatisfy { $0.hasPrefix(array + "_") })
        var spans: [(Date, Date)] = []
        try await Self.eventually { try Self.arrayTasks(array).count == 3 }
        for task in try Self.arrayTasks(array) {
            #expect(task.state == "COMPLETED", "\(task.id)")
            if let started = task.started { spans.append((started, task.ended)) }
        }
        let most = spans.map { span in spans.filter { $0.0 <= span.0 && $0.1 > span.0 }.count }.max() ?? 0
        #expect(spans.count == 3 && most == 1, "\(most) runs of a sweep with throttle 1 ran in the cluster at once")
    }

    /// A sweep canceled while its first run runs: that run ends canceled, and the tasks of the runs
    /// that waited for their turn (no unit took them) are canceled in the cluster, none left held.
    @Test func aCanceledSweepLeavesNoTaskHeldInTheCluster() async throws {
        let work = try TemporaryDirectory()
        let kim = try await Researcher.signUp("kim", on: stack)
        let code = "import time\nprint('begun', flush=True)\ntime.sleep(120)\n"
        let response = try await kim.upload(
            try Bundles.folder("long-sweep", files: ["code.py": code], in: work), fileName: "long-sweep.zip", fields: ["grid": "n=1..4", "throttle": "1"], path: "/api/v1/sweeps"
        )
        try #require(response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
        let sweep = try response.decode(APISweep.self)
        let first = try #require(sweep.runs.first)
        _ = try await Self.waitFor(kim, first.job.id, seconds: 120) { $0.status == "running" }
        let task = try clusterJob(of: first.job.id)
        let array = String(task.split(separator: "_")[0])
        #expect(try Self.slurm("squeue", ["-h", "-j", array, "--states=PENDING", "-o", "%i %r"]).contains("JobHeldUser"), "the other runs' tasks wait held")

        let canceled = try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + "/api/v1/sweeps/\(sweep.id)/cancel", headers: kim.auth))
        #expect(canceled.status == 202)
        for run in sweep.runs {
            #expect(try await kim.waitUntilFinished(run.job.id, seconds: 60).status == "canceled")
        }
        try await Self.eventually(seconds: 60) {
            try Self.slurm("squeue", ["-h", "-j", array, "--states=PENDING", "-o", "%i"]).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
        try await Self.eventually { try Self.arrayTasks(array).first { $0.id == task }?.state == "CANCELLED" }
    }

    /// A job waits in Slurm's queue behind one that holds the node: its page says why, in Slurm's
    /// word too; canceled there it never starts. The running one, canceled, ends canceled with what
    /// its output/ had by then.
    @Test func waitingJobsShowSlurmsReasonAndCancelReachesTheCluster() async throws {
        let work = try TemporaryDirectory()
        let lee = try await Researcher.signUp("lee", on: stack)
        let long = "import time\nopen('output/begun.txt', 'w').write('begun')\nprint('begun', flush=True)\ntime.sleep(120)\n"
        let first = try await lee.submit(try Bundles.folder("holder", files: ["code.py": long], in: work), fileName: "holder.zip")
        let second = try await lee.submit(try Bundles.folder("waiter", files: ["code.py": long], in: work), fileName: "waiter.zip")
        let running = try await Self.waitFor(lee, first.id) { $0.status == "running" }
        #expect(running.reason == nil)
        let waiting = try await Self.waitFor(lee, second.id) { $0.status == "queued" && $0.reason?.contains("Slurm: Resources") == true }
        #expect(waiting.reason?.contains("the nodes it needs are busy") == true, "\(waiting.reason ?? "")")

        let canceledWaiting = try await lee.cancel(second.id)
        #expect(canceledWaiting == 202)
        let waited = try await lee.waitUntilFinished(second.id, seconds: 60)
        #expect(waited.status == "canceled")
        // Never started: not on the cluster any more, and nothing of it ran.
        try await Self.eventually { try Self.slurmJobs(named: second.id).allSatisfy { $0.state == "CANCELLED" && $0.started == nil } }
        #expect(try await lee.log(second.id, stream: "stdout") == "")

        try await Self.eventually { try await lee.log(first.id, stream: "stdout") == "begun\n" }
        #expect(try await lee.cancel(first.id) == 202)
        let ended = try await lee.waitUntilFinished(first.id, seconds: 60)
        #expect(ended.status == "canceled")
        #expect(ended.reason?.contains("while it ran") == true, "\(ended.reason ?? "")")
        #expect(try await lee.result(first.id, into: work) == ["begun.txt": "begun"])
        try await Self.eventually { try Self.slurmJobs(named: first.id).map(\.state) == ["CANCELLED"] }
    }

    /// The unit is killed while its job runs on the cluster; started again, it adopts the job and
    /// reports its result; the job ran once.
    @Test func aUnitKilledWhileItsJobRunsAdoptsItWhenItIsBack() async throws {
        let work = try TemporaryDirectory()
        let max = try await Researcher.signUp("max", on: stack)
        let code = "import time\nprint('started', flush=True)\ntime.sleep(8)\nopen('output/done.txt', 'w').write('done')\nprint('done')\n"
        let job = try await max.submit(try Bundles.folder("survivor", files: ["code.py": code], in: work), fileName: "survivor.zip")
        _ = try await Self.waitFor(max, job.id) { $0.status == "running" }
        try await stack.restartUnit(after: SIGKILL)
        let done = try await max.waitUntilFinished(job.id, seconds: 120)
        #expect(done.status == "succeeded", "\(done.reason ?? "")")
        #expect(try await max.result(job.id, into: work) == ["done.txt": "done"])
        #expect(try await max.log(job.id, stream: "stdout") == "started\ndone\n", "code.py ran more than once")
        try await Self.eventually { try !Self.slurmJobs(named: job.id).isEmpty }
        #expect(try Self.slurmJobs(named: job.id).count == 1)
    }

    /// The node dies under a running job (set DOWN): Slurm ends it NODE_FAIL, which is the
    /// cluster's failure, not the job's; it runs again from the start as the next attempt and
    /// succeeds, and stderr says why it ran twice.
    @Test func aJobWhoseNodeFailsRunsAgain() async throws {
        let work = try TemporaryDirectory()
        let olaf = try await Researcher.signUp("olaf", on: stack)
        let code = "import time\nprint('started', flush=True)\ntime.sleep(6)\nopen('output/done.txt', 'w').write('done')\n"
        let job = try await olaf.submit(try Bundles.folder("fragile", files: ["code.py": code], in: work), fileName: "fragile.zip")
        _ = try await Self.waitFor(olaf, job.id) { $0.status == "running" }
        let node = try Self.slurm("sinfo", ["-h", "-N", "-o", "%N"]).split(separator: "\n").first.map(String.init) ?? "ferry-node"
        // Whatever happens, the node is back for the tests after this one.
        defer { _ = try? Self.run("/usr/bin/scontrol", ["update", "nodename=\(node)", "state=resume"]) }
        _ = try Self.slurm("scontrol", ["update", "nodename=\(node)", "state=down", "reason=ferry-test-node-failure"])
        try await Self.eventually { try Self.slurmJobs(named: job.id).contains { $0.state == "NODE_FAIL" } }
        _ = try? Self.run("/usr/bin/scontrol", ["update", "nodename=\(node)", "state=resume"])
        let done = try await olaf.waitUntilFinished(job.id, seconds: 120)
        #expect(done.status == "succeeded", "\(done.reason ?? "")")
        #expect(try await olaf.result(job.id, into: work) == ["done.txt": "done"])
        #expect(try await olaf.log(job.id, stream: "stderr").contains("the cluster failed this job's run (Slurm: NODE_FAIL)"))
        try await Self.eventually { try Self.slurmJobs(named: job.id).count == 2 }
        #expect(try Self.slurmJobs(named: job.id).map(\.state).sorted() == ["COMPLETED", "NODE_FAIL"])
        let manifest = try String(contentsOfFile: stack.data.file("jobs/\(job.id)/manifest.json"), encoding: .utf8)
        #expect(manifest.contains(#""attempt" : 2"#), "\(manifest)")
    }

    // MARK: Helpers

    struct APISweep: Decodable {
        struct Run: Decodable { var index: Int; var job: APIJob }
        var id: String
        var runs: [Run]
    }

    /// The cluster's id of a finished job's run, from its manifest.
    func clusterJob(of jobID: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: stack.data.file("jobs/\(jobID)/cluster.json")))
        struct Record: Decodable { var schedulerID: String? }
        return try #require(try JSONDecoder().decode(Record.self, from: data).schedulerID, "job \(jobID) has no cluster job")
    }

    /// The tasks of an array that started or ended, from Slurm's accounting.
    static func arrayTasks(_ array: String) throws -> [SlurmJob] {
        try accounting(["-j", array, "-o", "JobID,State,Submit,Start,End"]).filter { !$0.id.contains("[") }
    }

    /// The cluster's jobs for a Ferry job (every attempt), from Slurm's accounting.
    struct SlurmJob {
        var id: String
        var state: String
        var submitted: Date
        var started: Date?
        var ended: Date
    }

    static func slurmJobs(named jobID: String) throws -> [SlurmJob] {
        let names = (1...3).map { "ferry-\(jobID)-\($0)" }.joined(separator: ",")
        return try accounting(["--name=\(names)", "-o", "JobIDRaw,State,Submit,Start,End"])
    }

    static func accounting(_ arguments: [String]) throws -> [SlurmJob] {
        let output = try slurm("sacct", ["-X", "-n", "-P", "-a", "-S", "now-1days"] + arguments)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, let submitted = formatter.date(from: fields[2]) else { return nil }
            return SlurmJob(
                id: fields[0], state: String(fields[1].split(separator: " ").first ?? ""), submitted: submitted,
                started: formatter.date(from: fields[3]), ended: formatter.date(from: fields[4]) ?? .distantFuture
            )
        }
    }

    static func slurm(_ tool: String, _ arguments: [String]) throws -> String {
        let (status, output) = try run("/usr/bin/" + tool, arguments)
        try #require(status == 0, "\(tool) \(arguments.joined(separator: " ")) failed")
        return output
    }

    /// Runs a program; its exit status and standard output.
    static func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func uid(of user: String) throws -> UInt32 {
        try #require(getpwnam(user)?.pointee.pw_uid, "no user \(user)")
    }

    /// Polls the job until `condition` holds, at most `seconds`.
    static func waitFor(_ researcher: Researcher, _ id: String, seconds: Double = 60, _ condition: (APIJob) -> Bool) async throws -> APIJob {
        let deadline = Date().addingTimeInterval(seconds)
        var job = try await researcher.job(id).decode(APIJob.self)
        while !condition(job) {
            try #require(Date() < deadline, "job \(id) stayed \(job.status) (\(job.reason ?? "no reason")); services said:\n\(researcher.stack.logs)")
            try await Task.sleep(for: .milliseconds(200))
            job = try await researcher.job(id).decode(APIJob.self)
        }
        return job
    }

    static func eventually(seconds: Double = 30, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try await !condition() {
            try #require(Date() < deadline, "the condition did not hold within \(seconds) s")
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}

extension Researcher {
    /// POST /api/v1/jobs/{id}/cancel; answers the status.
    func cancel(_ id: String) async throws -> Int {
        let response = try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + "/api/v1/jobs/\(id)/cancel", headers: auth))
        return Int(response.status)
    }
}

extension Trait where Self == StackTrait {
    /// A stack whose unit runs every job on the test cluster; fails (never skips) without one.
    static var slurmStack: Self {
        StackTrait {
            let environment = ProcessInfo.processInfo.environment
            try #require(environment["SLURM_CONF"] != nil, "no Slurm cluster: SLURM_CONF is not set (scripts/test starts one; see scripts/lib/slurm.sh)")
            return try await Stack.start(unitArguments: [
                "--unit-executor", "slurm", "--slurm-partition", environment["FERRY_TEST_SLURM_PARTITION"] ?? "ferry",
                "--slurm-poll-seconds", "1", "--slurm-cpus", "2",
            ], slots: 2)
        }
    }
}
