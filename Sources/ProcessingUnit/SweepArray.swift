import FerryContracts
import Foundation
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// A sweep on the Slurm executor is one Slurm job array: `sbatch --array=1-<runs>%<throttle> --hold`,
/// task N for the sweep's run N, so the cluster's tools (squeue, sacct, scancel) show and handle the
/// sweep as one, and Slurm holds its throttle too. Each run stays an ordinary Ferry job that any unit
/// may take: the first unit to take a run of the sweep submits the array (every task held), and the
/// unit that takes run N claims task N, writes its script here and lets the task go. A task whose
/// run is canceled before any unit took it is canceled in the cluster by the next unit that looks
/// (the Backend's `cancel/sweep-<sweep>-<N>` marker), so no task stays held. A run given anything
/// the array was not submitted with (other limits, a second attempt after the cluster failed it, a
/// re-run of a place whose task was used) goes as its own batch job, as does every run of a sweep
/// whose array Slurm refused (more tasks than its MaxArraySize, a QOS limit).
///
/// `$FERRY_DATA_DIR/arrays/<sweep>/`, the unit's own (0700: neither jobs nor the Backend write the
/// scripts the nodes run): `array.json` (the array's id and shape), `claim-<N>` (the job that took
/// task N, or `canceled`), `task-<N>.sh` (task N's batch script until it ended) and `lock`.
struct SweepArray {
    let sweepID: String
    let folder: String

    init(sweepID: String, dataDirectory: String) {
        self.sweepID = sweepID
        folder = dataDirectory + "/arrays/" + sweepID
    }

    /// The array's name in the cluster, which finds it again after a unit died between submitting
    /// it and recording its id.
    var name: String { "ferry-sweep-\(sweepID)" }

    /// What the array was submitted with; a run that needs anything else is its own batch job.
    struct Shape: Codable, Equatable {
        var runs: Int
        var throttle: Int
        var timeLimitMinutes: Int
        var memoryMiB: Int
        var cpus: Int
        var partition: String?
        var account: String?
        var qos: String?

        init(runs: Int, throttle: Int, job: BatchJob) {
            self.runs = runs
            self.throttle = min(throttle, runs)
            timeLimitMinutes = job.timeLimitMinutes
            memoryMiB = job.memoryMiB
            cpus = job.cpus
            partition = job.partition
            account = job.account
            qos = job.qos
        }
    }

    /// `array.json`: the array's cluster id, or why the cluster refused it.
    struct Record: Codable {
        var shape: Shape
        var schedulerID: String?
        var refused: String?
    }

    /// An array task's id as Slurm writes it: `<array>_<task>`.
    static func isTaskID(_ id: String) -> Bool {
        let parts = id.split(separator: "_", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isNumber) }
    }

    static func taskID(array: String, index: Int) -> String { "\(array)_\(index)" }

    /// The batch script of the whole array: it runs the script the unit that took the task's run
    /// wrote. No word of it comes from a job.
    static func dispatcher(folder: String) -> String {
        """
        #!/bin/bash
        # A Ferry sweep: one task per run. The unit that takes run N writes task-N.sh here, then lets task N go.
        task=\(ClusterExecutor.quoted(folder))/task-"$SLURM_ARRAY_TASK_ID".sh
        [ -f "$task" ] || { echo "Ferry: task $SLURM_ARRAY_TASK_ID has no script" >&2; exit 125; }
        exec /bin/bash "$task"

        """
    }

    func lock() async throws -> FileLock {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try await FileLock.acquire(folder + "/lock", limit: .seconds(120))
    }

    var record: Record? {
        guard let data = FileManager.default.contents(atPath: folder + "/array.json") else { return nil }
        return try? JSONDecoder().decode(Record.self, from: data)
    }

    func write(_ record: Record) throws {
        try DurableFile.write(try JSONEncoder().encode(record), to: folder + "/array.json")
    }

    enum Claim: Equatable {
        /// The task is this job's (claimed now, or by this job before its unit restarted).
        case ours
        /// Another job had it (an earlier run at this place), or its run was canceled.
        case taken
    }

    /// Claims task `index` for `jobID` (`O_EXCL`: one claimer, whichever unit comes first).
    func claim(_ index: Int, for jobID: String) throws -> Claim {
        if try DurableFile.create(Data(jobID.utf8), at: claimPath(index)) { return .ours }
        return claimant(index) == jobID ? .ours : .taken
    }

    func claimant(_ index: Int) -> String? {
        FileManager.default.contents(atPath: claimPath(index)).map { String(decoding: $0.prefix(64), as: UTF8.self) }
    }

    /// Places whose run was canceled before any unit took it: claimed `canceled` here, for their
    /// tasks to be canceled in the cluster. Once every place is claimed the array is `settled`, and
    /// nobody looks again.
    func claimAbandoned(runs: Int, dataDirectory: String) -> [Int] {
        guard !isSettled else { return [] }
        var unclaimed = 0
        let abandoned = (1...max(1, runs)).filter { index in
            guard access(claimPath(index), F_OK) != 0 else { return false }
            guard CancelMarker.isCanceled(sweepID: sweepID, index: index, dataDirectory: dataDirectory), (try? claim(index, for: "canceled")) == .ours else {
                unclaimed += 1
                return false
            }
            return true
        }
        if unclaimed == 0 { try? DurableFile.write(Data(), to: folder + "/settled") }
        return abandoned
    }

    var isSettled: Bool { access(folder + "/settled", F_OK) == 0 }

    func writeTask(_ index: Int, script: String) throws {
        try DurableFile.write(Data(script.utf8), to: taskPath(index))
    }

    func removeTask(_ index: Int) { unlink(taskPath(index)) }

    private func claimPath(_ index: Int) -> String { folder + "/claim-\(index)" }
    private func taskPath(_ index: Int) -> String { folder + "/task-\(index).sh" }
}

extension JobRunner {
    /// The run's task in its sweep's array (submitting the array when this is the sweep's first run
    /// to reach a unit), claimed, given `job`'s script and let go; nil when the run goes as its own
    /// batch job. The task's id is recorded before the task is let go, so that a unit that restarts
    /// follows it (and lets it go, if it had not) instead of submitting the run again.
    func arrayTask(_ record: inout ClusterRecord, job: BatchJob, cluster: ClusterExecutor, logger: Logger) async throws -> String? {
        guard record.attempt == 1, let sweep = record.message.sweep, let runs = sweep.runs, let throttle = sweep.throttle, runs > 1 else { return nil }
        let array = SweepArray(sweepID: sweep.sweepID, dataDirectory: settings.dataDirectory)
        let shape = SweepArray.Shape(runs: runs, throttle: throttle, job: job)
        let lock = try await array.lock()
        defer { lock.release() }
        var state = await BlockingWork.run { array.record }
        if state == nil { state = try await submitArray(array, shape: shape, cluster: cluster, logger: logger) }
        // A place whose earlier run was canceled while it waited may take its still-held task: the
        // pass over abandoned places (`tidySweepArray`) is left to the ends of runs and the janitor.
        guard let state, let arrayID = state.schedulerID, state.shape == shape else { return nil }
        guard try array.claim(sweep.index, for: record.message.jobID) == .ours else { return nil }
        let task = SweepArray.taskID(array: arrayID, index: sweep.index)
        try array.writeTask(sweep.index, script: job.script)
        record.schedulerID = task
        try record.write(in: settings.jobs + "/" + record.message.jobID)
        do {
            try await cluster.scheduler.release(task)
        } catch {
            logger.warning("the cluster did not let the sweep's task go yet; trying again while following it", metadata: ["error": "\(error)"])
        }
        logger.info("run handed to the cluster as a task of its sweep's job array", metadata: ["slurm.job": "\(task)"])
        return task
    }

    /// Submits the sweep's array, every task held; a refusal is recorded, and the sweep's runs then
    /// go as batch jobs of their own.
    private func submitArray(_ array: SweepArray, shape: SweepArray.Shape, cluster: ClusterExecutor, logger: Logger) async throws -> SweepArray.Record {
        var record = SweepArray.Record(shape: shape)
        if let found = try await cluster.scheduler.find(named: array.name) {
            record.schedulerID = found  // submitted by a unit that died before it recorded the id
        } else {
            let job = BatchJob(
                name: array.name, script: SweepArray.dispatcher(folder: array.folder), workingDirectory: array.folder,
                standardOutput: "/dev/null", standardError: "/dev/null", cpus: shape.cpus, memoryMiB: shape.memoryMiB,
                timeLimitMinutes: shape.timeLimitMinutes, partition: shape.partition, account: shape.account, qos: shape.qos,
                array: BatchArray(tasks: shape.runs, throttle: shape.throttle)
            )
            do {
                let id = try await cluster.scheduler.submit(job)
                record.schedulerID = id
                logger.info("sweep submitted to the cluster as one job array", metadata: [
                    "sweep.id": "\(array.sweepID)", "slurm.job": "\(id)", "tasks": "\(shape.runs)", "throttle": "\(shape.throttle)",
                ])
            } catch let error as SchedulerError {
                record.refused = error.description
                logger.warning("the cluster refused the sweep's job array; its runs go as batch jobs of their own", metadata: ["sweep.id": "\(array.sweepID)", "error": "\(error)"])
            }
        }
        try array.write(record)
        return record
    }

    /// Cancels the array tasks of the sweep's runs canceled before any unit took them, if the sweep
    /// is an array; called when one of its runs ends or is canceled, and every minute by `SweepArrayJanitor`.
    func tidySweepArray(_ sweepID: String, cluster: ClusterExecutor, logger: Logger) async {
        let array = SweepArray(sweepID: sweepID, dataDirectory: settings.dataDirectory)
        guard let record = await BlockingWork.run({ array.isSettled ? nil : array.record }), let arrayID = record.schedulerID else { return }
        let lock: FileLock
        do {
            lock = try await array.lock()
        } catch {
            logger.warning("cannot look after the sweep's job array", metadata: ["sweep.id": "\(sweepID)", "error": "\(error)"])
            return
        }
        defer { lock.release() }
        let data = settings.dataDirectory
        for index in await BlockingWork.run({ array.claimAbandoned(runs: record.shape.runs, dataDirectory: data) }) {
            let task = SweepArray.taskID(array: arrayID, index: index)
            do {
                try await cluster.scheduler.cancel(task)
                logger.info("canceled the array task of a sweep's run that was canceled before it ran", metadata: ["slurm.job": "\(task)"])
            } catch {
                logger.warning("the cluster did not cancel a canceled run's array task", metadata: ["slurm.job": "\(task)", "error": "\(error)"])
            }
        }
    }
}

/// Every minute, the tasks of sweep runs canceled before any unit took them are canceled in the
/// cluster (the runs' own units do it as soon as they see a cancel; this is the backstop).
struct SweepArrayJanitor: Service {
    let runner: JobRunner
    let cluster: ClusterExecutor
    let logger: Logger

    func run() async throws {
        let arrays = runner.settings.dataDirectory + "/arrays"
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let sweeps = await BlockingWork.run { ((try? FileManager.default.contentsOfDirectory(atPath: arrays)) ?? []).filter(JobID.isValid) }
            for sweep in sweeps { await runner.tidySweepArray(sweep, cluster: cluster, logger: logger) }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        }
    }
}
