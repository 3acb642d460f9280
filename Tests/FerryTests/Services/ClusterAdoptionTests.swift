import FerryContracts
import FerryTestSupport
import Foundation
import Logging
@testable import ProcessingUnit
import Synchronization
import Testing

/// What a restarted unit does with a job it had handed to the cluster, against a scheduler fake
/// (the real Slurm runs in SlurmExecutorTests): it never submits a job twice, and a job the
/// cluster already ran is reported, not run again.
@Suite("Slurm executor: adopting jobs after a restart")
struct ClusterAdoptionTests {
    /// A scheduler that knows some jobs by name and id, and records what it was asked to submit.
    final class FakeScheduler: BatchScheduler {
        struct Known: Sendable {
            var name: String
            var state: BatchJobState
        }

        let jobs: Mutex<[String: Known]>
        let submitted = Mutex<[BatchJob]>([])
        /// Every job submitted here ends as if its node had died.
        let failEverySubmission = Mutex(false)
        /// What `jobs/<job>/cluster.json` said when each submission was made.
        let recordAtSubmit = Mutex<[ClusterRecord?]>([])
        let jobDirectory: String

        init(jobs: [String: Known], jobDirectory: String) {
            self.jobs = Mutex(jobs)
            self.jobDirectory = jobDirectory
        }

        /// Array tasks let go (each then ends as it ran), and jobs or tasks canceled.
        let released = Mutex<[String]>([])
        let canceled = Mutex<[String]>([])
        /// Arrays are refused, as Slurm refuses one past its MaxArraySize.
        let refuseArrays = Mutex(false)

        func submit(_ job: BatchJob) async throws -> String {
            if job.array != nil, refuseArrays.withLock({ $0 }) {
                throw SchedulerError("Slurm did not take the job (sbatch: error: Batch job submission failed: Invalid job array specification)")
            }
            recordAtSubmit.withLock { $0.append(ClusterRecord.read(in: jobDirectory)) }
            submitted.withLock { $0.append(job) }
            let id = "\(100 + submitted.withLock { $0.count })"
            let fails = failEverySubmission.withLock { $0 }
            let end = fails ? BatchJobEnd(kind: .infrastructure("NODE_FAIL"), exitCode: 0) : BatchJobEnd(kind: .exited, exitCode: 0)
            jobs.withLock { $0[id] = Known(name: job.name, state: job.array == nil ? .ended(end) : .pending(reason: "JobHeldUser")) }
            return id
        }

        func release(_ id: String) async throws {
            released.withLock { $0.append(id) }
            jobs.withLock { $0[id] = Known(name: "task", state: .ended(BatchJobEnd(kind: .exited, exitCode: 0))) }
        }

        func states(of ids: [String]) async throws -> [String: BatchJobState] {
            jobs.withLock { known in Dictionary(uniqueKeysWithValues: ids.compactMap { id in known[id].map { (id, $0.state) } }) }
        }

        func cancel(_ id: String) async throws { canceled.withLock { $0.append(id) } }

        func find(named name: String) async throws -> String? {
            jobs.withLock { $0.first { $0.value.name == name }?.key }
        }
    }

    /// A unit's runner on the Slurm executor, with the scheduler fake.
    static func clusterRunner(settings: UnitSettings, scheduler: FakeScheduler, registry: RunRegistry) -> JobRunner {
        var runner = JobRunner(
            settings: settings, sandbox: .unsandboxed,
            environments: EnvironmentCache(settings: settings, sandbox: .unsandboxed, pythonVersion: "3", logger: Logger(label: "test")),
            registry: registry, logger: Logger(label: "test")
        )
        runner.cluster = ClusterExecutor(scheduler: scheduler, settings: ClusterSettings(pollInterval: .milliseconds(10)), filterPath: "", asRoot: false)
        return runner
    }

    /// A job as a unit has it when it hands its first attempt to the cluster: its project in its work
    /// folder, with one file in `output/`, and the attempt recorded (with Slurm's id, if it has one).
    static func prepareFirstAttempt(_ message: JobMessage, settings: UnitSettings, output: (name: String, content: String), schedulerID: String? = nil) throws {
        let jobID = message.jobID
        let project = settings.work(of: jobID) + "/proj"
        try FileManager.default.createDirectory(atPath: project + "/output", withIntermediateDirectories: true)
        try Data(output.content.utf8).write(to: URL(fileURLWithPath: project + "/output/" + output.name))
        let jobDirectory = settings.jobs + "/" + jobID
        try FileManager.default.createDirectory(atPath: jobDirectory, withIntermediateDirectories: true)
        try ClusterRecord(
            message: message, unit: settings.name, attempt: 1, schedulerID: schedulerID, project: project,
            environment: settings.environments + "/x", python: settings.environments + "/x/bin/python", manifest: Manifest(jobID: jobID, unit: settings.name, python: "3")
        ).write(in: jobDirectory)
    }

    struct Setup {
        let folder: TemporaryDirectory
        let message: JobMessage
        let runner: JobRunner
        let registry: RunRegistry
        let scheduler: FakeScheduler
        var jobDirectory: String { folder.path + "/jobs/" + message.jobID }

        init(known: [String: FakeScheduler.Known], schedulerID: String?) throws {
            folder = try TemporaryDirectory("ferry-adoption")
            let jobID = UUID().uuidString.lowercased()
            message = JobMessage(
                jobID: jobID, owner: "u1", project: "proj", bundlePath: "bundles/\(jobID).zip",
                limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: 256), submittedAt: Date()
            )
            let settings = UnitSettings(dataDirectory: folder.path)
            // What the unit that died had recorded: the attempt (and, if it got that far, Slurm's id).
            try ClusterAdoptionTests.prepareFirstAttempt(message, settings: settings, output: ("answer.txt", "42"), schedulerID: schedulerID)
            registry = RunRegistry()
            scheduler = FakeScheduler(jobs: known, jobDirectory: folder.path + "/jobs/" + jobID)
            runner = ClusterAdoptionTests.clusterRunner(settings: settings, scheduler: scheduler, registry: registry)
        }

        func run() async throws -> RunState {
            _ = await registry.claim(message.jobID, finished: nil)
            await runner.run(message)
            return try #require(await registry.state(of: message.jobID))
        }
    }

    /// The unit died after submitting and before it recorded Slurm's id: the job is found by the
    /// attempt's name and followed, never submitted again.
    @Test func aSubmissionWhoseIDWasNotRecordedIsFoundByItsName() async throws {
        let setup = try Setup(known: [:], schedulerID: nil)
        setup.scheduler.jobs.withLock { $0["77"] = .init(name: "ferry-\(setup.message.jobID)-1", state: .ended(BatchJobEnd(kind: .exited, exitCode: 0))) }
        let state = try await setup.run()
        #expect(state.status == .succeeded, "\(state.reason ?? "")")
        #expect(setup.scheduler.submitted.withLock { $0.isEmpty }, "the job was submitted a second time")
        let manifest = try String(contentsOfFile: setup.jobDirectory + "/manifest.json", encoding: .utf8)
        #expect(manifest.contains(#""jobID" : "77""#))
        #expect(FileManager.default.fileExists(atPath: setup.folder.path + "/results/\(setup.message.jobID).zip"))
    }

    /// The cluster already ran the job (the unit died before it wrote the result): the run is
    /// reported as the cluster ended it, code.py's exit code included.
    @Test func aJobTheClusterAlreadyRanIsReportedNotRunAgain() async throws {
        let setup = try Setup(known: ["78": .init(name: "n", state: .ended(BatchJobEnd(kind: .exited, exitCode: 3)))], schedulerID: "78")
        let state = try await setup.run()
        #expect(state.status == .failed && state.exitCode == 3, "\(state)")
        #expect(setup.scheduler.submitted.withLock { $0.isEmpty })
        // A second delivery of the same message reports the manifest's result.
        let again = try await setup.run()
        #expect(again.status == .failed && again.exitCode == 3)
        #expect(setup.scheduler.submitted.withLock { $0.isEmpty })
    }

    /// The unit died after recording the attempt and before the submission reached the cluster:
    /// it submits once, with the record on disk before the submission is made.
    @Test func anAttemptThatNeverReachedTheClusterIsSubmittedOnceRecordedFirst() async throws {
        let setup = try Setup(known: [:], schedulerID: nil)
        let state = try await setup.run()
        #expect(state.status == .succeeded, "\(state.reason ?? "")")
        let submitted = setup.scheduler.submitted.withLock { $0 }
        #expect(submitted.map(\.name) == ["ferry-\(setup.message.jobID)-1"])
        let recorded = setup.scheduler.recordAtSubmit.withLock { $0 }
        #expect(recorded.count == 1 && recorded[0]?.name == submitted.first?.name && recorded[0]?.schedulerID == nil)
        #expect(ClusterRecord.read(in: setup.jobDirectory)?.schedulerID == "101")
    }

    /// The record lives in the job's folder, which the Backend owns: one that points anywhere the
    /// unit would not (another interpreter, a host folder for the sandbox) is refused and nothing is
    /// submitted; the job is Ferry's trouble (retried), never run with it.
    @Test func aRecordChangedOutsideTheUnitIsRefused() async throws {
        let setup = try Setup(known: [:], schedulerID: nil)
        var record = try #require(ClusterRecord.read(in: setup.jobDirectory))
        record.environment = "/etc"
        record.python = "/etc/bin/python"
        try record.write(in: setup.jobDirectory)
        let state = try await setup.run()
        #expect(state.status == .error && state.retryable == true, "\(state)")
        #expect(setup.scheduler.submitted.withLock { $0.isEmpty })
        let settings = UnitSettings(dataDirectory: setup.folder.path)
        #expect(ClusterRecord.unfinished(settings: settings).isEmpty)
        record.environment = settings.environments + "/x"
        record.python = record.environment + "/bin/python"
        record.project = settings.work(of: setup.message.jobID) + "/../other"
        #expect(!record.isConsistent(with: settings, jobID: setup.message.jobID))
        record.project = settings.work(of: setup.message.jobID) + "/proj"
        #expect(record.isConsistent(with: settings, jobID: setup.message.jobID))
    }

    /// A cluster failure (a node died) is the cluster's, not the job's: the bundle is extracted
    /// anew and submitted again under the next attempt's name, up to `slurm.retries` times; then the
    /// job ends `error`, saying so.
    @Test(arguments: [false, true])
    func infrastructureFailuresAreRetriedThenEndError(everyAttemptFails: Bool) async throws {
        let nodeFail = BatchJobState.ended(BatchJobEnd(kind: .infrastructure("NODE_FAIL"), exitCode: 0))
        let setup = try Setup(known: ["79": .init(name: "n", state: nodeFail)], schedulerID: "79")
        setup.scheduler.failEverySubmission.withLock { $0 = everyAttemptFails }
        // The uploaded bundle, as the Backend stored it.
        let source = try TemporaryDirectory("ferry-adoption-bundle")
        try FileManager.default.createDirectory(atPath: source.path + "/proj", withIntermediateDirectories: true)
        try Data("print(1)\n".utf8).write(to: URL(fileURLWithPath: source.path + "/proj/code.py"))
        try FileManager.default.createDirectory(atPath: setup.folder.path + "/bundles", withIntermediateDirectories: true)
        let zip = Process()
        zip.executableURL = URL(fileURLWithPath: "/usr/bin/zip")
        zip.currentDirectoryURL = URL(fileURLWithPath: source.path)
        zip.arguments = ["-qr", setup.folder.path + "/" + setup.message.bundlePath, "proj"]
        try zip.run()
        zip.waitUntilExit()

        let state = try await setup.run()
        let names = setup.scheduler.submitted.withLock { $0.map(\.name) }
        let stderr = try String(contentsOfFile: setup.jobDirectory + "/stderr.log", encoding: .utf8)
        #expect(stderr.contains("the cluster failed this job's run (Slurm: NODE_FAIL)"))
        if everyAttemptFails {
            #expect(names == ["ferry-\(setup.message.jobID)-2", "ferry-\(setup.message.jobID)-3"])
            #expect(state.status == .error)
            #expect(state.reason?.contains("failed the job 3 times (Slurm: NODE_FAIL)") == true, "\(state)")
        } else {
            #expect(names == ["ferry-\(setup.message.jobID)-2"])
            #expect(state.status == .succeeded, "\(state)")
        }
    }
}
