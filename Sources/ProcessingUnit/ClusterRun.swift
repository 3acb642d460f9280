import FerryContracts
import FerryFiles
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The Slurm executor's side of the unit (`unit.executor=slurm`): the unit still extracts and
/// checks the bundle and prepares the environment (both on the cluster's shared file system), then
/// hands `python code.py` to the cluster's scheduler as one batch job and follows it there.
struct ClusterExecutor: Sendable {
    let scheduler: any BatchScheduler
    let settings: ClusterSettings
    /// The compiled seccomp filter where the nodes read it (the sandbox root, on the shared file system).
    let filterPath: String
    /// Whether the unit runs as root: the batch script then starts as root on the node and becomes
    /// the job user before code.py runs, as on the unit; otherwise it is the unit's own user.
    let asRoot: Bool
}

/// `jobs/<job>/cluster.json`: the job on the cluster, written before every submission, so that a
/// unit that dies between submitting and recording the scheduler's id finds the job by its name
/// (unique to the attempt) instead of submitting it twice; and, with what preparing found, all a
/// unit needs to adopt the job after a restart without running anything again.
struct ClusterRecord: Codable, Sendable {
    var message: JobMessage
    var unit: String
    var attempt: Int
    var schedulerID: String?
    /// The project folder inside the work folder, and the environment's folder and interpreter.
    var project: String
    var environment: String
    var python: String
    var manifest: Manifest

    /// The scheduler job's name for this attempt.
    var name: String { "ferry-\(message.jobID)-\(attempt)" }

    static func path(in jobDirectory: String) -> String { jobDirectory + "/cluster.json" }

    static func read(in jobDirectory: String) -> ClusterRecord? {
        guard let data = FileManager.default.contents(atPath: path(in: jobDirectory)) else { return nil }
        return try? JSONDecoder.ferry().decode(ClusterRecord.self, from: data)
    }

    /// Whether every path in the record is the one the unit derives from the job id, so that a
    /// record changed by anyone else who can write the job's folder on the shared volume (the
    /// Backend owns it) cannot point the batch script, which starts as root, anywhere else.
    func isConsistent(with settings: UnitSettings, jobID: String) -> Bool {
        let work = settings.work(of: jobID) + "/"
        let inside = { (path: String) in !path.split(separator: "/").contains("..") }
        return message.jobID == jobID && JobID.isValid(jobID) && message.bundlePath == "bundles/\(jobID).zip" && unit == settings.name
            && project.hasPrefix(work) && inside(project)
            && environment.hasPrefix(settings.environments + "/") && inside(environment) && !environment.dropFirst(settings.environments.count + 1).contains("/")
            && python == environment + "/bin/python" && attempt >= 1 && attempt <= 100
            && schedulerID.map { (!$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isNumber)) || SweepArray.isTaskID($0) } ?? true
    }

    /// Written whole (a temporary name, flushed, renamed) before the step it records is taken.
    func write(in jobDirectory: String) throws {
        try DurableFile.write(try JSONEncoder.ferry([.sortedKeys]).encode(self), to: Self.path(in: jobDirectory))
    }

    /// The records of jobs this unit handed to the cluster and has not finished (no manifest yet).
    static func unfinished(settings: UnitSettings) -> [ClusterRecord] {
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: settings.jobs)) ?? []
        return folders.filter { JobID.isValid($0) }.compactMap { folder in
            let directory = settings.jobs + "/" + folder
            guard !FileManager.default.fileExists(atPath: directory + "/manifest.json"), let record = read(in: directory),
                  record.isConsistent(with: settings, jobID: folder) else { return nil }
            return record
        }
    }
}

/// What the batch script leaves in `jobs/<job>/cluster-run` for the unit: `started <epoch>` when it
/// begins, then `<exit|timeout> <code> <peak memory bytes>` when code.py ended.
struct ClusterRunReport: Equatable {
    var started = false
    var timedOut = false
    var exitCode: Int32?
    var peakMemoryBytes: UInt64?

    static func path(in jobDirectory: String) -> String { jobDirectory + "/cluster-run" }

    static func read(in jobDirectory: String) -> ClusterRunReport {
        let descriptor = open(path(in: jobDirectory), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { return ClusterRunReport() }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = Glibc.read(descriptor, &buffer, buffer.count)
        return parse(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self))
    }

    static func parse(_ text: String) -> ClusterRunReport {
        var report = ClusterRunReport()
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "started": report.started = true
            case "exit", "timeout":
                report.started = true
                report.timedOut = words[0] == "timeout"
                report.exitCode = words.count > 1 ? Int32(words[1]) : nil
                report.peakMemoryBytes = words.count > 2 ? UInt64(words[2]).flatMap { $0 > 0 ? $0 : nil } : nil
            default: continue
            }
        }
        return report
    }
}

extension ClusterExecutor {
    /// Where a script run as a job array's task goes and writes (a lone job is told by sbatch).
    struct Place {
        var directory: String
        var standardOutput: String
        var standardError: String
    }

    /// The batch script: code.py under the job's exact time limit (`timeout`; the scheduler's own
    /// limit is a backstop a minute later), in the sandbox, with nothing of the submitter's
    /// environment; then the job cgroup's peak memory (the scheduler's sampled MaxRSS misses peaks)
    /// and how it ended, into the report the unit reads. Every word is quoted; none comes from the job.
    static func batchScript(
        jobID: String, attempt: Int, command: [String], environment: [String: String], filter: String?, timeLimitSeconds: Int, report: String, place: Place? = nil
    ) -> String {
        let environmentWords = environment.sorted { $0.key < $1.key }.map { quoted("\($0.key)=\($0.value)") }.joined(separator: " ")
        let run = ["/usr/bin/timeout", "--kill-after=5", "\(timeLimitSeconds)", "/usr/bin/env", "-i"].map(quoted).joined(separator: " ")
            + " " + environmentWords + " " + command.map(quoted).joined(separator: " ")
        return """
        #!/bin/bash
        # Ferry job \(jobID), attempt \(attempt): code.py on a node of the cluster.
        export PATH=/usr/bin:/bin
        \(place.map { "exec >>\(quoted($0.standardOutput)) 2>>\(quoted($0.standardError)); cd \(quoted($0.directory)) || exit 125" } ?? "")
        report=\(quoted(report))
        started=$(date +%s)
        echo "started $started" > "$report"
        \(filter.map { "exec 3< \(quoted($0)) || exit 125" } ?? "")
        \(run)
        code=$?
        \(filter == nil ? "" : "exec 3<&-")
        ended=exit
        if { [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; } && [ $(( $(date +%s) - started )) -ge \(timeLimitSeconds) ]; then ended=timeout; fi
        # The peak memory of the job's own cgroup (v1: memory.max_usage_in_bytes; v2: memory.peak).
        peak=0
        while IFS=: read -r _ controllers path; do
          case ",$controllers," in
            *,memory,*) peak=$(cat "/sys/fs/cgroup/memory${path%%/step_*}/memory.max_usage_in_bytes" 2>/dev/null || echo 0) ;;
            ,,) [ "$peak" = 0 ] && peak=$(cat "/sys/fs/cgroup${path%%/step_*}/memory.peak" 2>/dev/null || echo 0) ;;
          esac
        done < /proc/self/cgroup
        echo "$ended $code $peak" > "$report"
        exit "$code"

        """
    }

    /// One word for the shell, whatever it holds.
    static func quoted(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The scheduler's time limit in whole minutes: the job's own limit (which the script enforces
    /// to the second) and a minute more.
    static func timeLimitMinutes(seconds: Int) -> Int { (seconds + 59) / 60 + 1 }

    /// Why a job waits, in the researcher's words, with the scheduler's own word for operators.
    static func waitingReason(_ reason: String) -> String {
        let why: String = switch reason {
        case "Priority": "jobs with a higher priority are ahead of it"
        case "Resources": "the nodes it needs are busy"
        case "None", "": "it has just been handed to the cluster"
        case "BeginTime": "it may not start yet"
        case "Dependency": "it waits for another job"
        case "JobArrayTaskLimit": "other runs of its sweep hold the places it may use at once"
        case let word where ["ReqNodeNotAvail", "NodeDown", "PartitionDown", "PartitionInactive", "Nodes required"].contains(where: word.hasPrefix):
            "the nodes it needs are not available"
        case let word where word.hasPrefix("QOS") || word.hasPrefix("Assoc"): "the lab's share or job limits on the cluster are reached for now"
        default: "the cluster holds it"
        }
        return "Waiting in the cluster's queue: \(why) (Slurm: \(reason.isEmpty ? "None" : reason))."
    }
}

extension JobRunner {
    /// Hands the prepared job to the cluster and follows it there to its end.
    func runOnCluster(
        _ message: JobMessage, cluster: ClusterExecutor, work: String, project: String, environment: EnvironmentCache.Prepared, manifest: inout Manifest, logger: Logger
    ) async throws -> RunState {
        let record = ClusterRecord(
            message: message, unit: settings.name, attempt: 1, project: project, environment: environment.directory, python: environment.python, manifest: manifest
        )
        return try await followOnCluster(record, cluster: cluster, manifest: &manifest, logger: logger)
    }

    /// Follows the job on the cluster, submitting it where no attempt reached the cluster yet, and
    /// again (up to `slurm.retries` times) when the cluster failed it; answers its final state.
    func followOnCluster(_ start: ClusterRecord, cluster: ClusterExecutor, manifest: inout Manifest, logger: Logger) async throws -> RunState {
        var record = start
        let message = record.message, jobID = message.jobID
        let jobDirectory = settings.jobs + "/" + jobID, work = settings.work(of: jobID)
        manifest = record.manifest
        while true {
            guard let schedulerID = try await schedulerJob(&record, cluster: cluster, work: work, logger: logger) else {
                return Self.canceled(jobID, whileRunning: false)
            }
            var logger = logger
            logger[metadataKey: "slurm.job"] = "\(schedulerID)"
            let followed = try await follow(schedulerID, of: message, cluster: cluster, work: work, jobDirectory: jobDirectory, logger: logger)
            if case .infrastructure(let what) = followed.end.kind {
                guard record.attempt <= cluster.settings.retries else {
                    return RunState(
                        jobID: jobID, status: .error,
                        reason: "The cluster failed the job \(record.attempt) times (Slurm: \(what)); it was not the job's fault. Try it again later, or tell Ferry's operators.",
                        finishedAt: Date()
                    )
                }
                logger.warning("the cluster failed the job; submitting it again", metadata: ["slurm.state": "\(what)", "attempt": "\(record.attempt + 1)"])
                // A fresh start: the bundle extracted anew, the logs begun again.
                let report = try await unpack(
                    settings.dataDirectory + "/" + message.bundlePath, uploadName: message.project + ".zip", into: work,
                    logs: (jobDirectory + "/stdout.log", jobDirectory + "/stderr.log")
                )
                record.project = work + "/" + report.root
                try FileManager.default.createDirectory(atPath: record.project + "/output", withIntermediateDirectories: true)
                try Data("Ferry: the cluster failed this job's run (Slurm: \(what)), not the job itself; it runs again from the start.\n".utf8)
                    .append(toFile: jobDirectory + "/stderr.log")
                if sandbox.settings.mode == .bubblewrap {
                    try await BlockingWork.run { Result { try Self.changeOwner(of: work, to: sandbox.user) } }.get()
                }
                record.attempt += 1
                record.schedulerID = nil
                continue
            }
            return try await finishOnCluster(record, cluster: cluster, followed: followed, work: work, jobDirectory: jobDirectory, manifest: &manifest, logger: logger)
        }
    }

    /// The scheduler's id of the record's attempt: the one recorded, else one the scheduler knows by
    /// the attempt's name (submitted by a unit that died before it could record the id), else a new
    /// submission, recorded before it is made. Nil when the job was canceled before it was submitted.
    private func schedulerJob(_ record: inout ClusterRecord, cluster: ClusterExecutor, work: String, logger: Logger) async throws -> String? {
        let jobDirectory = settings.jobs + "/" + record.message.jobID
        if let id = record.schedulerID { return id }  // a held array task is let go while it is followed
        if let found = try await cluster.scheduler.find(named: record.name) {
            logger.info("adopting the job the cluster has from before this unit restarted", metadata: ["slurm.job": "\(found)"])
            record.schedulerID = found
            try record.write(in: jobDirectory)
            return found
        }
        if await isCanceled(record.message.jobID) { return nil }
        try record.write(in: jobDirectory)
        unlink(ClusterRunReport.path(in: jobDirectory))
        let job = batchJob(for: record, cluster: cluster, work: work, jobDirectory: jobDirectory)
        // A sweep's run: a task of the sweep's job array, where it can be one.
        if let task = try await arrayTask(&record, job: job, cluster: cluster, logger: logger) { return task }
        let id = try await cluster.scheduler.submit(job)
        logger.info("job handed to the cluster", metadata: ["slurm.job": "\(id)", "attempt": "\(record.attempt)"])
        record.schedulerID = id
        try record.write(in: jobDirectory)
        return id
    }

    private func batchJob(for record: ClusterRecord, cluster: ClusterExecutor, work: String, jobDirectory: String) -> BatchJob {
        let message = record.message
        let limits = JobSandboxLimits(memoryBytes: UInt64(message.limits.memoryLimitMiB) << 20, cpuSeconds: message.limits.timeLimitSeconds * cluster.settings.cpus)
        let contained = cluster.settings.sandbox == .bubblewrap && sandbox.settings.mode == .bubblewrap
        let command = sandbox.clusterCommand(
            python: record.python, readOnly: [record.environment], work: work, project: record.project, limits: limits, contained: contained, asRoot: cluster.asRoot
        )
        let stdout = jobDirectory + "/stdout.log", stderr = jobDirectory + "/stderr.log"
        let script = ClusterExecutor.batchScript(
            jobID: message.jobID, attempt: record.attempt, command: command,
            environment: sandbox.environment(for: message.jobID, sweep: message.sweep, pythonEnvironment: record.environment, work: work, sandboxed: contained),
            filter: contained ? cluster.filterPath : nil, timeLimitSeconds: message.limits.timeLimitSeconds, report: ClusterRunReport.path(in: jobDirectory),
            place: message.sweep == nil ? nil : .init(directory: record.project, standardOutput: stdout, standardError: stderr)
        )
        return BatchJob(
            name: record.name, script: script, workingDirectory: record.project,
            standardOutput: stdout, standardError: stderr,
            cpus: cluster.settings.cpus, memoryMiB: message.limits.memoryLimitMiB,
            timeLimitMinutes: ClusterExecutor.timeLimitMinutes(seconds: message.limits.timeLimitSeconds),
            partition: cluster.settings.partition, account: cluster.settings.account, qos: cluster.settings.qos
        )
    }

    struct ClusterFollowed {
        var end: BatchJobEnd
        /// Why the unit ended the job itself (its owner canceled it, or its output went past the limits).
        var stopReason: RunWatcher.StopReason?
        var startedAt: Date?
    }

    /// Watches the scheduler job until it ended: its state every `slurm.poll-seconds` (a wait in the
    /// queue with the scheduler's reason, then running), the owner's cancel and the output limits every
    /// second. When the unit shuts down the job goes on on the cluster; the next unit adopts it.
    private func follow(
        _ id: String, of message: JobMessage, cluster: ClusterExecutor, work: String, jobDirectory: String, logger: Logger
    ) async throws -> ClusterFollowed {
        let jobID = message.jobID
        let outputLimits = sandbox.settings.outputLimits
        let logs = [jobDirectory + "/stdout.log", jobDirectory + "/stderr.log"]
        let cancelRequested = Flag()
        await registry.setStopper(jobID) { cancelRequested.set() }
        defer { Task { await registry.setStopper(jobID, nil) } }
        var stopReason: RunWatcher.StopReason?
        var startedAt: Date?
        var lastPoll: ContinuousClock.Instant?
        var unknownSince: ContinuousClock.Instant?
        var lastReason: String?
        var nextWalk = ContinuousClock.now
        while true {
            try Task.checkCancellation()
            if stopReason == nil {
                let canceled = cancelRequested.isSet || CancelMarker.isCanceled(jobID: jobID, dataDirectory: settings.dataDirectory)
                var exceeded: OutputLimits.Exceeded?
                if !canceled, startedAt != nil, ContinuousClock.now >= nextWalk {
                    let began = ContinuousClock.now
                    exceeded = await BlockingWork.run { OutputUsage.measure(folder: work, files: logs, limits: outputLimits) }.exceeded(outputLimits)
                    nextWalk = .now + OutputUsage.pause(after: ContinuousClock.now - began)
                }
                if canceled || exceeded != nil {
                    stopReason = canceled ? .canceled : .output(exceeded!)
                    logger.info("ending the job on the cluster", metadata: ["why": "\(canceled ? "canceled by its owner" : "over its output limits")"])
                    do {
                        try await cluster.scheduler.cancel(id)
                    } catch {
                        logger.warning("the cluster did not take the cancel; trying again", metadata: ["error": "\(error)"])
                        stopReason = nil
                    }
                    lastPoll = nil
                }
            }
            if lastPoll.map({ ContinuousClock.now - $0 >= cluster.settings.pollInterval }) ?? true {
                lastPoll = .now
                do {
                    switch try await cluster.scheduler.states(of: [id])[id] {
                    case .pending(let reason):
                        unknownSince = nil
                        if reason == "JobHeldUser", SweepArray.isTaskID(id), stopReason == nil {
                            // A sweep's array task its unit recorded but had not let go yet (it restarted, or Slurm did not answer).
                            do { try await cluster.scheduler.release(id) } catch { logger.warning("the cluster did not let the sweep's task go; trying again", metadata: ["error": "\(error)"]) }
                        }
                        let text = ClusterExecutor.waitingReason(reason)
                        if text != lastReason {
                            lastReason = text
                            await registry.update(jobID) { $0.status = .queued; $0.reason = text }
                        }
                    case .running(let since):
                        unknownSince = nil
                        if startedAt == nil {
                            let began = since ?? Date()
                            startedAt = began
                            await registry.update(jobID) { $0.status = .running; $0.reason = nil; $0.startedAt = began }
                        }
                    case .ended(let end):
                        return ClusterFollowed(end: end, stopReason: stopReason, startedAt: startedAt ?? end.startedAt)
                    case nil where stopReason == .canceled:
                        // Canceled before it began and already forgotten (an array's task that never left the array).
                        return ClusterFollowed(end: BatchJobEnd(kind: .canceled, exitCode: 0), stopReason: stopReason, startedAt: startedAt)
                    case nil:
                        // Submitted, yet unknown: a cluster that lost the job (its controller's state) failed it.
                        let since = unknownSince ?? .now
                        unknownSince = since
                        if ContinuousClock.now - since > .seconds(120) {
                            return ClusterFollowed(end: BatchJobEnd(kind: .infrastructure("the cluster no longer knows the job"), exitCode: 0), stopReason: stopReason)
                        }
                    }
                } catch {
                    // The controller may be restarting: the job is still there; ask again.
                    logger.warning("the cluster does not answer about the job; asking again", metadata: ["error": "\(error)"])
                }
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// The job ended on the cluster: its result zipped, its final state decided as on the unit.
    private func finishOnCluster(
        _ record: ClusterRecord, cluster: ClusterExecutor, followed: ClusterFollowed, work: String, jobDirectory: String, manifest: inout Manifest, logger: Logger
    ) async throws -> RunState {
        let message = record.message
        let report = ClusterRunReport.read(in: jobDirectory)
        if let sweep = message.sweep, let id = record.schedulerID, SweepArray.isTaskID(id) {
            // The task ended: its script goes, and the tasks of runs canceled meanwhile with it.
            SweepArray(sweepID: sweep.sweepID, dataDirectory: settings.dataDirectory).removeTask(sweep.index)
            await tidySweepArray(sweep.sweepID, cluster: cluster, logger: logger)
        }
        let outputLimits = sandbox.settings.outputLimits
        let logs = [jobDirectory + "/stdout.log", jobDirectory + "/stderr.log"]
        var overOutput: OutputLimits.Exceeded?
        if case .output(let exceeded) = followed.stopReason {
            overOutput = exceeded
        } else {
            overOutput = await BlockingWork.run { OutputUsage.measure(folder: work, files: logs, limits: outputLimits) }.exceeded(outputLimits)
        }
        let end = followed.end
        // Canceled before its script began: it never ran, and there is nothing to zip.
        if end.kind == .canceled, !report.started { return Self.canceled(message.jobID, whileRunning: false) }
        let resultBytes = try await archiveResult(of: message.jobID, project: record.project, work: work, overOutput: overOutput, limits: outputLimits, logger: logger)
        if let started = followed.startedAt, let ended = end.endedAt { manifest.runningSeconds = max(0, ended.timeIntervalSince(started)) }
        manifest.peakMemoryBytes = report.peakMemoryBytes
        manifest.cluster = record.schedulerID.map { .init(scheduler: "slurm", jobID: $0, attempt: record.attempt) }
        let exitCode = report.exitCode ?? end.exitCode
        let contained = sandbox.settings.mode == .bubblewrap
        let signal = end.signal ?? (exitCode > 128 && (contained || report.exitCode != nil) ? exitCode - 128 : nil)
        var ending = JobRunner.RunEnding(
            exitCode: exitCode, signal: signal, timedOut: report.timedOut || end.kind == .timedOut, outOfMemory: end.kind == .outOfMemory,
            stopReason: followed.stopReason, overOutput: overOutput, overCPU: signal == SIGXCPU
        )
        if end.kind == .canceled, followed.stopReason == nil {
            // Canceled on the cluster by someone else (its operators): said so, as canceled.
            var state = Self.canceled(message.jobID, whileRunning: true)
            state.reason = "The cluster's operators canceled the job (Slurm: CANCELLED); the result holds what output/ had by then."
            state.resultBytes = resultBytes
            state.startedAt = followed.startedAt
            return state
        }
        if ending.outOfMemory { ending.signal = nil }
        return finalState(of: message, ending: ending, resultBytes: resultBytes, startedAt: followed.startedAt, cpuSeconds: message.limits.timeLimitSeconds * cluster.settings.cpus)
    }
}
