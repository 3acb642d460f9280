import Crypto
import FerryBundle
import FerryFiles
import FerryContracts
import FerryZip
import Foundation
import Logging
import Metrics
import NIOPosix

/// Runs one job: extract the bundle into a fresh work folder, prepare the environment, run
/// `python code.py` with stdout and stderr streaming to the job's logs, zip `output/` into `results/`,
/// and write `manifest.json`. Every change of status goes to the registry, where the Consumer sees it.
struct JobRunner: Sendable {
    let settings: UnitSettings
    let sandbox: Sandbox
    let environments: EnvironmentCache
    let registry: RunRegistry
    let logger: Logger
    /// Where code.py runs when not on this machine (`unit.executor=slurm`).
    var cluster: ClusterExecutor?

    func run(_ message: JobMessage) async {
        let jobDirectory = settings.jobs + "/" + message.jobID
        var logger = logger
        logger[metadataKey: "job.id"] = "\(message.jobID)"
        let lock: FileLock
        do {
            lock = try await RunLock.acquire(jobDirectory: jobDirectory, owner: settings.volumeOwner) {
                logger.info("another unit runs this job; waiting for its run to end")
            }
        } catch {
            // Shutting down while waiting (the Consumer hands the job back), or the volume failed (retried).
            logger.warning("job not run here", metadata: ["error": "\(error)"])
            if !Task.isCancelled {
                let failed = RunState(jobID: message.jobID, status: .error, reason: "Ferry could not lock the job's folder: \(error)", finishedAt: Date(), retryable: true)
                await registry.update(message.jobID) { $0 = failed }
            }
            return
        }
        defer { lock.release() }
        // A run that ended elsewhere (or here, before a restart) is reported, never repeated.
        let manifestPath = jobDirectory + "/manifest.json"
        if let finished = await BlockingWork.run({ Manifest.finishedState(at: manifestPath) }) {
            await registry.update(message.jobID) { $0 = finished }
            return
        }

        let started = Date()
        var manifest = Manifest(jobID: message.jobID, unit: settings.name, python: environments.pythonVersion)
        let final: RunState
        do {
            final = try await execute(message, in: jobDirectory, manifest: &manifest, logger: logger)
        } catch where Task.isCancelled {
            // The unit is shutting down and its grace period is over: no manifest and no result, so
            // that the job runs again from the start wherever its redelivered message lands.
            logger.warning("job interrupted by the unit's shutdown; it runs again elsewhere")
            return
        } catch {
            // Ferry's failure, not the job's: no manifest, so that the retry the Consumer asks for runs it afresh.
            logger.error("job could not run; it will be retried", metadata: ["error": "\(error)"])
            let failed = RunState(jobID: message.jobID, status: .error, reason: "Ferry could not run the job: \(error)", finishedAt: Date(), retryable: true)
            await registry.update(message.jobID) { $0 = failed }
            return
        }
        manifest.status = final.status
        manifest.exitCode = final.exitCode
        manifest.reason = final.reason
        manifest.totalSeconds = Date().timeIntervalSince(started)
        if case .failure(let error) = await BlockingWork.run({ [manifest] in Result { try Manifest.write(manifest, final: final, to: manifestPath) } }) {
            logger.error("cannot write manifest.json", metadata: ["error": "\(error)"])
        }
        // Said as soon as the manifest records it: from here a redelivery reports this run, never repeats it.
        logger.info("job finished", metadata: ["status": "\(final.status.rawValue)"])
        // The result and the manifest are written: the extracted bundle and the job's files go before
        // the job is reported finished (unless the operator keeps them a while; WorkFolderJanitor
        // removes them later).
        if settings.keepWorkSeconds == 0 {
            let work = settings.work(of: message.jobID)
            if case .failure(let error) = await BlockingWork.run({ Result { try FileTree.remove(work) } }) {
                logger.warning("cannot remove the job's work folder; the janitor tries again", metadata: ["error": "\(error)"])
            }
        }
        await registry.update(message.jobID) { $0 = final }
    }

    private func execute(_ message: JobMessage, in jobDirectory: String, manifest: inout Manifest, logger: Logger) async throws -> RunState {
        let work = settings.work(of: message.jobID)
        let bundle = settings.dataDirectory + "/" + message.bundlePath
        let stdout = jobDirectory + "/stdout.log", stderr = jobDirectory + "/stderr.log"

        // A job already handed to the cluster (before this unit restarted) is followed there and
        // adopted, never submitted again.
        if let cluster, let record = await BlockingWork.run({ ClusterRecord.read(in: jobDirectory) }) {
            guard record.isConsistent(with: settings, jobID: message.jobID) else {
                throw ChildRunError(message: "the job's cluster record does not match the job; it was changed outside the unit")
            }
            return try await followOnCluster(record, cluster: cluster, manifest: &manifest, logger: logger)
        }

        // A job canceled while it waited in the queue never starts (nor does its task in its sweep's array).
        if await isCanceled(message.jobID) {
            if let cluster, let sweep = message.sweep { await tidySweepArray(sweep.sweepID, cluster: cluster, logger: logger) }
            return Self.canceled(message.jobID, whileRunning: false)
        }

        // Preparing: a fresh work folder with the bundle in it, then the environment.
        let preparing = Date()
        let report = try await unpack(bundle, uploadName: message.project + ".zip", into: work, logs: (stdout, stderr))
        manifest.bundleSHA256 = try await NIOThreadPool.singleton.runIfActive { try Self.sha256(of: bundle) }
        let project = work + "/" + report.root
        try FileManager.default.createDirectory(atPath: project + "/output", withIntermediateDirectories: true)
        if let sweep = message.sweep {
            // The run's parameters, in place of any params.json the bundle brought.
            unlink(project + "/params.json")
            try Data(sweep.parametersJSON.utf8).write(to: URL(fileURLWithPath: project + "/params.json"))
        }

        let environment: EnvironmentCache.Prepared
        switch try await prepareEnvironment(message, requirements: report.requirements, jobDirectory: jobDirectory, stderr: stderr) {
        case .ready(let prepared): environment = prepared
        case .failed(let state): return state
        }
        // An index that cannot be reached (InstallFailure.indexUnavailable) is Ferry's: it throws on,
        // and the job is tried again later without a manifest.
        manifest.environment = .init(key: (environment.directory as NSString).lastPathComponent, cacheHit: environment.cacheHit)
        Counter(label: "ferry_environment_cache_total", dimensions: [("result", environment.cacheHit ? "hit" : "miss")]).increment()
        manifest.packages = await environments.installedPackages(environment)
        manifest.preparingSeconds = Date().timeIntervalSince(preparing)
        if await isCanceled(message.jobID) { return Self.canceled(message.jobID, whileRunning: false) }

        // Running, contained (see Sandbox): the job's files become the job user's, its cgroup holds
        // its memory and process limits, and a watcher ends it when its output grows past the limit.
        if sandbox.settings.mode == .bubblewrap {
            try await NIOThreadPool.singleton.runIfActive { try Self.changeOwner(of: work, to: sandbox.user) }
        } else {
            logger.warning("job runs WITHOUT a sandbox (unit.sandbox=none): as Ferry's own user, with network and access to Ferry's files")
        }
        if let cluster {
            return try await runOnCluster(message, cluster: cluster, work: work, project: project, environment: environment, manifest: &manifest, logger: logger)
        }
        let memoryBytes = UInt64(message.limits.memoryLimitMiB) << 20
        let cgroup = try sandbox.cgroups.map {
            try JobCgroup(version: $0, name: "ferry-job-" + message.jobID, memoryBytes: memoryBytes, processes: sandbox.settings.maxProcesses)
        }
        // Whatever ends the run, nothing of the job outlives it: the group is emptied and removed
        // (off the cooperative pool: the kill loop waits for the kernel) before the state is reported.
        do {
            let state = try await runContained(
                message, work: work, project: project, logs: (stdout, stderr), environment: environment, cgroup: cgroup, memoryBytes: memoryBytes,
                manifest: &manifest, logger: logger
            )
            await BlockingWork.run { cgroup?.killAllAndRemove() }
            return state
        } catch {
            await BlockingWork.run { cgroup?.killAllAndRemove() }
            throw error
        }
    }

    /// A fresh work folder (a redelivered job starts over) holding the checked bundle's files, and
    /// empty logs; what the bundle holds is checked again here, as the Backend did on upload.
    func unpack(_ bundle: String, uploadName: String, into work: String, logs: (stdout: String, stderr: String)) async throws -> BundleReport {
        try await BlockingWork.run { Result { try FileTree.remove(work) } }.get()
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: logs.stdout, contents: nil)
        FileManager.default.createFile(atPath: logs.stderr, contents: nil)
        let limits = settings.bundleLimits
        return try await NIOThreadPool.singleton.runIfActive {
            let report = try BundleInspector.inspect(archive: bundle, uploadName: uploadName, limits: limits)
            try ZipReader(path: bundle, maxEntries: limits.maxEntries).extractAll(
                into: work, limits: .init(maxEntries: limits.maxEntries, maxTotalBytes: limits.maxUncompressedBytes),
                including: { !BundleInspector.isLitter(name: $0.name) }
            )
            return report
        }
    }

    private enum EnvironmentOutcome {
        case ready(EnvironmentCache.Prepared)
        /// The requirements can never install: the job ends failed, with the installer's reason.
        case failed(RunState)
    }

    /// The environment for the bundle's requirements, from the cache or installed now.
    private func prepareEnvironment(_ message: JobMessage, requirements: [String], jobDirectory: String, stderr: String) async throws -> EnvironmentOutcome {
        do {
            return .ready(try await environments.prepare(requirements: requirements, log: jobDirectory + "/install.log"))
        } catch let failure as InstallFailure where failure.kind == .requirements {
            // The researcher's to fix: the reason itself on the job, the whole log one click away.
            try? Data("Ferry: requirements.txt could not be installed: \(failure.summary)\nThe installer's whole log is under Install.\n".utf8).append(toFile: stderr)
            return .failed(RunState(
                jobID: message.jobID, status: .failed,
                reason: "requirements.txt could not be installed: \(failure.summary). The installer's log is under Install.", finishedAt: Date()
            ))
        }
    }

    /// Runs `python code.py` in the sandbox and its cgroup, zips its output and decides its final state.
    private func runContained(
        _ message: JobMessage, work: String, project: String, logs: (stdout: String, stderr: String), environment: EnvironmentCache.Prepared,
        cgroup: JobCgroup?, memoryBytes: UInt64, manifest: inout Manifest, logger: Logger
    ) async throws -> RunState {
        let (stdout, stderr) = logs
        let limits = JobSandboxLimits(
            memoryBytes: memoryBytes, cpuSeconds: message.limits.timeLimitSeconds * ProcessInfo.processInfo.activeProcessorCount
        )
        let command = sandbox.jobCommand(python: environment.python, readOnly: [environment.directory], work: work, project: project, limits: limits, cgroup: cgroup)
        let startedAt = Date()
        await registry.update(message.jobID) { $0.status = .running; $0.startedAt = startedAt }
        let dataDirectory = settings.dataDirectory, jobID = message.jobID
        let outputLimits = sandbox.settings.outputLimits
        let watcher = RunWatcher(
            folder: work, logs: [stdout, stderr], limits: outputLimits,
            isCanceled: { CancelMarker.isCanceled(jobID: jobID, dataDirectory: dataDirectory) },
            killAll: { cgroup?.killAll() }
        )
        await registry.setStopper(jobID) { watcher.stop(.canceled) }
        defer { Task { await registry.setStopper(jobID, nil) } }
        let outcome = try await watcher.watch(while: command.childRun(
            environment: sandbox.environment(for: message.jobID, sweep: message.sweep, pythonEnvironment: environment.directory, work: work),
            standardOutput: stdout, standardError: stderr, timeout: .seconds(message.limits.timeLimitSeconds)
        ))
        try Task.checkCancellation()  // interrupted by shutdown: the outcome is not the job's own
        // Nothing of the job runs any more before its output is looked at and zipped: no process of
        // it can swap a file for a link while the unit reads.
        await BlockingWork.run { cgroup?.killAll() }
        manifest.runningSeconds = Date().timeIntervalSince(startedAt)
        manifest.peakMemoryBytes = cgroup?.peakBytes ?? outcome.maxResidentBytes
        // wait4 sees the CPU time of the processes the unit itself waited for: the whole job when it
        // runs directly, but not what runs inside bubblewrap's PID namespace; no figure beats a wrong one.
        let measuresCPU = sandbox.settings.mode == .none
        manifest.cpuSeconds = measuresCPU ? outcome.cpuSeconds : nil
        // Read before the deferred removal of the group.
        let outOfMemory = cgroup?.oomKilled == true
        // What the job wrote in its last second counts too.
        let overOutput: OutputLimits.Exceeded?
        if case .output(let exceeded) = watcher.stopReason {
            overOutput = exceeded
        } else {
            overOutput = await BlockingWork.run { watcher.measure() }.exceeded(outputLimits)
        }

        let resultBytes = try await archiveResult(of: message.jobID, project: project, work: work, overOutput: overOutput, limits: outputLimits, logger: logger)
        let signal = outcome.signal ?? (sandbox.settings.mode == .bubblewrap && outcome.exitCode > 128 ? outcome.exitCode - 128 : nil)
        let ending = RunEnding(
            exitCode: outcome.exitCode, signal: signal, timedOut: outcome.timedOut, outOfMemory: outOfMemory, stopReason: watcher.stopReason,
            overOutput: overOutput, overCPU: signal == SIGXCPU || (measuresCPU && outcome.cpuSeconds >= Double(limits.cpuSeconds))
        )
        return finalState(of: message, ending: ending, resultBytes: resultBytes, startedAt: startedAt, cpuSeconds: limits.cpuSeconds)
    }

    /// The result: output/ as it is, whatever the outcome, so partial output is kept, up to the
    /// output limits. Only an output folder that really is inside the work folder counts (the job
    /// may have replaced it with a symbolic link to elsewhere); inside it, links and special files
    /// are skipped and nothing is ever followed. Answers the result's size, nil when there is none.
    func archiveResult(of jobID: String, project: String, work: String, overOutput: OutputLimits.Exceeded?, limits: OutputLimits, logger: Logger) async throws -> Int64? {
        let result = settings.results + "/" + jobID + ".zip"
        guard !FileManager.default.fileExists(atPath: result) else {  // a finished result is never overwritten
            return (try? FileManager.default.attributesOfItem(atPath: result)[.size] as? NSNumber)??.int64Value
        }
        try FileManager.default.createDirectory(atPath: settings.results, withIntermediateDirectories: true)
        let output = Self.contained(project + "/output", in: work) ?? NSTemporaryDirectory() + "ferry-empty-\(jobID)"
        let archiveLimits = ZipArchiveLimits(maxEntries: limits.files, maxDepth: limits.depth)
        let archived = await BlockingWork.run {
            Result {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                return try ZipWriter.archive(folder: output, to: result, limits: archiveLimits)
            }
        }
        switch archived {
        case .success(let summary):
            return Int64(summary.archiveBytes)
        case .failure(let error) where overOutput != nil:
            // The job's own excess: it ends killed for its output, without a result.
            logger.warning("the output of a job over its limits could not be zipped", metadata: ["error": "\(error)"])
            return nil
        case .failure(let error):
            throw error
        }
    }

    /// How code.py's run ended, wherever it ran (on the unit, or on a cluster's node).
    struct RunEnding {
        var exitCode: Int32
        /// The signal that ended code.py, if one did.
        var signal: Int32?
        var timedOut: Bool
        var outOfMemory: Bool
        var stopReason: RunWatcher.StopReason?
        var overOutput: OutputLimits.Exceeded?
        var overCPU: Bool
    }

    /// The job's final state from how its run ended: the first of canceled, timed out, a limit, a
    /// signal, a non-zero exit; succeeded otherwise.
    func finalState(of message: JobMessage, ending: RunEnding, resultBytes: Int64?, startedAt: Date?, cpuSeconds: Int) -> RunState {
        var state = RunState(jobID: message.jobID, status: .succeeded, resultBytes: resultBytes, startedAt: startedAt, finishedAt: Date())
        let outputLimit = "\(sandbox.settings.maxOutputBytes >> 20) MiB"
        if ending.stopReason == .canceled {
            state = Self.canceled(message.jobID, whileRunning: true)
            state.resultBytes = resultBytes
            state.startedAt = startedAt
        } else if ending.timedOut {
            state.status = .timedOut
            state.reason = "The job ran longer than its time limit of \(message.limits.timeLimitSeconds) s and was stopped."
        } else if ending.outOfMemory {
            state.status = .killed
            state.reason = "The job used more memory than its limit of \(message.limits.memoryLimitMiB) MiB and was stopped. Ask for a higher memoryLimit or use less memory."
        } else if let overOutput = ending.overOutput {
            state.status = .killed
            state.reason = switch overOutput {
            case .bytes: "The job wrote more than the output size limit of \(outputLimit) (files and logs together, or one file) and was stopped."
            case .files: "The job created more than \(sandbox.settings.maxOutputFiles) files and folders, the output limit, and was stopped. Write fewer, larger files (or an archive)."
            case .depth: "The job made folders more than \(OutputLimits.defaultDepth) levels deep, beyond the output limit, and was stopped."
            }
        } else if ending.overCPU {
            state.status = .killed
            state.reason = "The job used more than its CPU time limit of \(cpuSeconds) s and was stopped."
        } else if ending.signal == SIGXFSZ {
            state.status = .killed
            state.reason = "A file of the job reached the output size limit of \(outputLimit) and the job was stopped."
        } else if let signal = ending.signal {
            state.status = .killed
            state.reason = "code.py was ended by signal \(signal)."
        } else if ending.exitCode != 0 {
            state.status = .failed
            state.exitCode = ending.exitCode
            state.reason = "code.py exited with code \(ending.exitCode); see stderr."
        } else {
            state.exitCode = 0
        }
        return state
    }

    func isCanceled(_ jobID: String) async -> Bool {
        let requested = await registry.isCancelRequested(jobID)
        return requested || CancelMarker.isCanceled(jobID: jobID, dataDirectory: settings.dataDirectory)
    }

    static func canceled(_ jobID: String, whileRunning: Bool) -> RunState {
        let reason = whileRunning ? "Canceled by its owner while it ran; the result holds what output/ had by then." : "Canceled by its owner before it ran."
        return RunState(jobID: jobID, status: .canceled, reason: reason, finishedAt: Date())
    }

    /// `path` resolved, if it is a folder inside `folder` (after following every link).
    static func contained(_ path: String, in folder: String) -> String? {
        guard let real = realpath(path, nil), let base = realpath(folder, nil) else { return nil }
        defer { free(real); free(base) }
        let resolved = String(cString: real), root = String(cString: base)
        var isFolder: ObjCBool = false
        guard resolved.hasPrefix(root + "/"), FileManager.default.fileExists(atPath: resolved, isDirectory: &isFolder), isFolder.boolValue else { return nil }
        return resolved
    }

    /// Gives the job user the extracted work folder (never following links; extraction refuses them).
    static func changeOwner(of folder: String, to user: (uid: uid_t, gid: gid_t)) throws {
        guard lchown(folder, user.uid, user.gid) == 0 else { throw ChildRunError(message: "cannot give the work folder to the job user: \(String(cString: strerror(errno)))") }
        try FileTree.walk(folder) { entry in
            let changed = (entry.names[entry.names.count - 1] + [0]).withUnsafeBufferPointer { name in
                name.withMemoryRebound(to: CChar.self) { fchownat(entry.parent, $0.baseAddress!, user.uid, user.gid, AT_SYMLINK_NOFOLLOW) }
            }
            guard changed == 0 else { throw ChildRunError(message: "cannot give \(entry.relativePath) to the job user: \(String(cString: strerror(errno)))") }
            return .next
        }
    }

    static func sha256(of path: String) throws -> String {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
