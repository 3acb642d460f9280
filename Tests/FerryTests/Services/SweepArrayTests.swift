import FerryContracts
import FerryTestSupport
import Foundation
import Logging
@testable import ProcessingUnit
import Testing

/// A sweep on the Slurm executor as one job array, against the scheduler fake (the real Slurm runs
/// in SlurmExecutorTests): one held submission for the sweep, each run its own task, let go by the
/// unit that took it; anything the array cannot hold goes as a batch job of its own.
@Suite("Slurm executor: a sweep as one job array")
struct SweepArrayTests {
    typealias FakeScheduler = ClusterAdoptionTests.FakeScheduler

    /// A unit's runner on a fresh data folder, and the runs it is given.
    struct Unit {
        let folder: TemporaryDirectory
        let runner: JobRunner
        let registry = RunRegistry()
        let scheduler: FakeScheduler
        let sweepID = UUID().uuidString.lowercased()
        var settings: UnitSettings { runner.settings }

        init() throws {
            folder = try TemporaryDirectory("ferry-array")
            let settings = UnitSettings(dataDirectory: folder.path)
            scheduler = FakeScheduler(jobs: [:], jobDirectory: folder.path + "/none")
            runner = ClusterAdoptionTests.clusterRunner(settings: settings, scheduler: scheduler, registry: registry)
        }

        /// A run of the sweep as a unit has it when it hands the run to the cluster: prepared (its
        /// project in its work folder) and its attempt recorded.
        func message(index: Int, runs: Int = 3, throttle: Int = 2, memory: Int = 256) throws -> JobMessage {
            let jobID = UUID().uuidString.lowercased()
            let message = JobMessage(
                jobID: jobID, owner: "u1", project: "proj", bundlePath: "bundles/\(jobID).zip",
                limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: memory), submittedAt: Date(),
                sweep: SweepRun(sweepID: sweepID, index: index, parameters: [.init(name: "n", value: "\(index)")], runs: runs, throttle: throttle)
            )
            try ClusterAdoptionTests.prepareFirstAttempt(message, settings: settings, output: ("n.txt", "\(index)"))
            return message
        }

        func run(_ message: JobMessage) async throws -> RunState {
            _ = await registry.claim(message.jobID, finished: nil)
            await runner.run(message)
            return try #require(await registry.state(of: message.jobID))
        }

        func schedulerID(of message: JobMessage) throws -> String? {
            let manifest = try Data(contentsOf: URL(fileURLWithPath: settings.jobs + "/\(message.jobID)/manifest.json"))
            struct Cluster: Decodable { var jobID: String }
            struct Manifest: Decodable { var cluster: Cluster? }
            return try JSONDecoder().decode(Manifest.self, from: manifest).cluster?.jobID
        }

        var array: SweepArray { SweepArray(sweepID: sweepID, dataDirectory: settings.dataDirectory) }
    }

    /// The sweep's first run submits the array (every task held, the throttle as `%K`); each run
    /// is then its own task, let go by its unit, and the task's script goes where its run is, writes
    /// the run's own logs, and is gone once the task ended.
    @Test func aSweepsRunsAreTasksOfOneHeldArray() async throws {
        let unit = try Unit()
        let first = try unit.message(index: 1), second = try unit.message(index: 2)
        #expect(try await unit.run(first).status == .succeeded)
        #expect(try await unit.run(second).status == .succeeded)

        let submitted = unit.scheduler.submitted.withLock { $0 }
        #expect(submitted.count == 1, "\(submitted.map(\.name))")
        let array = try #require(submitted.first)
        #expect(array.name == "ferry-sweep-\(unit.sweepID)")
        #expect(array.array == BatchArray(tasks: 3, throttle: 2))
        #expect(SlurmScheduler.submitArguments(array).suffix(2) == ["--array=1-3%2", "--hold"])
        #expect(array.memoryMiB == 256 && array.timeLimitMinutes == 2)
        #expect(array.script.contains("task-\"$SLURM_ARRAY_TASK_ID\".sh"))
        #expect(unit.scheduler.released.withLock { $0 } == ["101_1", "101_2"])
        #expect(try unit.schedulerID(of: first) == "101_1")
        #expect(try unit.schedulerID(of: second) == "101_2")
        #expect(unit.array.claimant(1) == first.jobID && unit.array.claimant(2) == second.jobID && unit.array.claimant(3) == nil)
        // Scripts go once their tasks ended; the folder is the unit's alone.
        #expect(!FileManager.default.fileExists(atPath: unit.array.folder + "/task-1.sh"))
        var info = stat()
        #expect(stat(unit.array.folder, &info) == 0 && info.st_mode & 0o077 == 0)
    }

    /// The task's script, as the unit writes it: into the run's project, its logs appended.
    @Test func aTasksScriptGoesToItsRunsFolderAndLogs() throws {
        let script = ClusterExecutor.batchScript(
            jobID: "abc", attempt: 1, command: ["python", "code.py"], environment: [:], filter: nil, timeLimitSeconds: 5, report: "/r",
            place: .init(directory: "/w/abc/it's", standardOutput: "/d/jobs/abc/stdout.log", standardError: "/d/jobs/abc/stderr.log")
        )
        #expect(script.contains("exec >>'/d/jobs/abc/stdout.log' 2>>'/d/jobs/abc/stderr.log'; cd '/w/abc/it'\\''s' || exit 125"))
        let dispatcher = SweepArray.dispatcher(folder: "/d/arrays/s")
        #expect(dispatcher.contains("task='/d/arrays/s'/task-\"$SLURM_ARRAY_TASK_ID\".sh"))
        #expect(dispatcher.contains("exec /bin/bash \"$task\""))
    }

    /// A re-run at a place whose task was used, and a run with other limits than the array's, go as
    /// batch jobs of their own; the array is not submitted again.
    @Test func whatTheArrayCannotHoldGoesAsItsOwnJob() async throws {
        let unit = try Unit()
        let first = try unit.message(index: 1)
        #expect(try await unit.run(first).status == .succeeded)
        let rerun = try unit.message(index: 1)
        #expect(try await unit.run(rerun).status == .succeeded)
        let bigger = try unit.message(index: 2, memory: 512)
        #expect(try await unit.run(bigger).status == .succeeded)
        let names = unit.scheduler.submitted.withLock { $0.map(\.name) }
        #expect(names == ["ferry-sweep-\(unit.sweepID)", "ferry-\(rerun.jobID)-1", "ferry-\(bigger.jobID)-1"])
        #expect(try unit.schedulerID(of: rerun) == "102")
        #expect(unit.array.claimant(1) == first.jobID && unit.array.claimant(2) == nil)
    }

    /// Runs canceled before any unit took them (the Backend's marker for their places) have their
    /// tasks canceled in the cluster when the next run of the sweep ends, and by a canceled run of
    /// the sweep, so none stays held; a run that comes at such a place later goes on its own.
    @Test func tasksOfRunsCanceledBeforeTheyRanAreCanceledInTheCluster() async throws {
        let unit = try Unit()
        try CancelMarker.write(sweepID: unit.sweepID, index: 3, dataDirectory: unit.settings.dataDirectory)
        let first = try unit.message(index: 1, runs: 4)
        #expect(try await unit.run(first).status == .succeeded)
        #expect(unit.scheduler.canceled.withLock { $0 } == ["101_3"])
        #expect(unit.array.claimant(3) == "canceled")

        // Place 4's run was canceled while it waited in the queue: its unit cancels the task too.
        let fourth = try unit.message(index: 4, runs: 4)
        try CancelMarker.write(jobID: fourth.jobID, dataDirectory: unit.settings.dataDirectory)
        try FileManager.default.removeItem(atPath: unit.settings.jobs + "/" + fourth.jobID + "/cluster.json")
        try CancelMarker.write(sweepID: unit.sweepID, index: 4, dataDirectory: unit.settings.dataDirectory)
        #expect(try await unit.run(fourth).status == .canceled)
        #expect(unit.scheduler.canceled.withLock { $0 } == ["101_3", "101_4"])

        let later = try unit.message(index: 3, runs: 4)
        #expect(try await unit.run(later).status == .succeeded)
        #expect(unit.scheduler.submitted.withLock { $0.map(\.name) }.last == "ferry-\(later.jobID)-1")
        // Place 2 is the last one open: once its run took it, the array is settled and nobody looks again.
        #expect(!unit.array.isSettled)
        #expect(try await unit.run(try unit.message(index: 2, runs: 4)).status == .succeeded)
        #expect(unit.array.isSettled)
    }

    /// An array the cluster refuses (more tasks than its MaxArraySize) is recorded as refused; the
    /// sweep's runs go as batch jobs of their own, and nobody tries the array again.
    @Test func aRefusedArrayLeavesTheRunsTheirOwnJobs() async throws {
        let unit = try Unit()
        unit.scheduler.refuseArrays.withLock { $0 = true }
        let first = try unit.message(index: 1), second = try unit.message(index: 2)
        #expect(try await unit.run(first).status == .succeeded)
        #expect(try await unit.run(second).status == .succeeded)
        #expect(unit.scheduler.submitted.withLock { $0.map(\.name) } == ["ferry-\(first.jobID)-1", "ferry-\(second.jobID)-1"])
        #expect(unit.array.record?.refused?.contains("Invalid job array specification") == true)
    }

    /// A unit that recorded its run's task and died before letting it go lets it go when it follows
    /// the task again; a task id is a record's valid id.
    @Test func aHeldTaskIsLetGoWhenItsRunIsAdopted() async throws {
        let unit = try Unit()
        let run = try unit.message(index: 2)
        let directory = unit.settings.jobs + "/" + run.jobID
        var record = try #require(ClusterRecord.read(in: directory))
        record.schedulerID = "55_2"
        try record.write(in: directory)
        #expect(record.isConsistent(with: unit.settings, jobID: run.jobID))
        unit.scheduler.jobs.withLock { $0["55_2"] = .init(name: "ferry-sweep-\(unit.sweepID)", state: .pending(reason: "JobHeldUser")) }
        #expect(try await unit.run(run).status == .succeeded)
        #expect(unit.scheduler.released.withLock { $0 } == ["55_2"])
        #expect(unit.scheduler.submitted.withLock { $0.isEmpty })
        for bad in ["55_", "_2", "55_2_1", "55-2", "55_2; rm"] {
            record.schedulerID = bad
            #expect(!record.isConsistent(with: unit.settings, jobID: run.jobID), "\(bad)")
        }
    }
}
