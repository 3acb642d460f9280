import Crypto
import FerryBundle
import FerryContracts
import FerryZip
import Foundation
import Logging
import NIOPosix

/// Runs one job: extract the bundle into a fresh work folder, prepare the environment, run
/// `python code.py` with stdout and stderr streaming to the job's logs, zip `output/` into `results/`,
/// and write `manifest.json`. Every change of status goes to the registry, where the Consumer sees it.
struct JobRunner: Sendable {
    let settings: UnitSettings
    let environments: EnvironmentCache
    let registry: RunRegistry
    let logger: Logger

    func run(_ message: JobMessage) async {
        let jobDirectory = settings.jobs + "/" + message.jobID
        var logger = logger
        logger[metadataKey: "job.id"] = "\(message.jobID)"
        let started = Date()
        var manifest = Manifest(jobID: message.jobID, unit: settings.name, python: environments.pythonVersion)
        let final: RunState
        do {
            final = try await execute(message, in: jobDirectory, manifest: &manifest, logger: logger)
        } catch {
            logger.error("job could not run", metadata: ["error": "\(error)"])
            final = RunState(jobID: message.jobID, status: .error, reason: "Ferry could not run the job: \(error)", finishedAt: Date())
        }
        manifest.status = final.status
        manifest.exitCode = final.exitCode
        manifest.reason = final.reason
        manifest.totalSeconds = Date().timeIntervalSince(started)
        do {
            try Manifest.write(manifest, final: final, to: jobDirectory + "/manifest.json")
        } catch {
            logger.error("cannot write manifest.json", metadata: ["error": "\(error)"])
        }
        await registry.update(message.jobID) { $0 = final }
        logger.info("job finished", metadata: ["status": "\(final.status.rawValue)"])
    }

    private func execute(_ message: JobMessage, in jobDirectory: String, manifest: inout Manifest, logger: Logger) async throws -> RunState {
        let work = jobDirectory + "/work"
        let bundle = settings.dataDirectory + "/" + message.bundlePath
        let stdout = jobDirectory + "/stdout.log", stderr = jobDirectory + "/stderr.log"

        // Preparing: a fresh work folder (a redelivered job starts over), the bundle, the environment.
        let preparing = Date()
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: stdout, contents: nil)
        FileManager.default.createFile(atPath: stderr, contents: nil)
        let report = try await NIOThreadPool.singleton.runIfActive {
            let report = try BundleInspector.inspect(archive: bundle, uploadName: message.project + ".zip")
            try ZipReader(path: bundle).extractAll(into: work, including: { !BundleInspector.isLitter(name: $0.name) })
            return report
        }
        manifest.bundleSHA256 = try await NIOThreadPool.singleton.runIfActive { try Self.sha256(of: bundle) }
        let project = work + "/" + report.root
        try FileManager.default.createDirectory(atPath: project + "/output", withIntermediateDirectories: true)

        let environment: EnvironmentCache.Prepared
        do {
            environment = try await environments.prepare(requirements: report.requirements, log: jobDirectory + "/install.log")
        } catch let error as EnvironmentError {
            try? Data("Ferry: \(error.message)\n".utf8).write(to: URL(fileURLWithPath: stderr))
            return RunState(jobID: message.jobID, status: .failed, reason: "requirements.txt could not be installed; see install.log in the job's logs", finishedAt: Date())
        }
        manifest.environment = .init(key: (environment.directory as NSString).lastPathComponent, cacheHit: environment.cacheHit)
        manifest.packages = await environments.installedPackages(environment)
        manifest.preparingSeconds = Date().timeIntervalSince(preparing)

        // Running.
        let startedAt = Date()
        await registry.update(message.jobID) { $0.status = .running; $0.startedAt = startedAt }
        let outcome = try await ChildRun(
            executable: environment.python, arguments: ["code.py"], directory: project,
            environment: [
                "PATH": environment.directory + "/bin:/usr/local/bin:/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "FERRY_JOB_ID": message.jobID,
            ],
            standardOutput: stdout, standardError: stderr, timeout: .seconds(message.limits.timeLimitSeconds)
        ).run()
        manifest.runningSeconds = Date().timeIntervalSince(startedAt)

        // The result: output/ as it is, whatever the outcome, so partial output is kept.
        let result = settings.results + "/" + message.jobID + ".zip"
        var resultBytes: Int64?
        if !FileManager.default.fileExists(atPath: result) {  // a finished result is never overwritten
            try FileManager.default.createDirectory(atPath: settings.results, withIntermediateDirectories: true)
            let summary = try await NIOThreadPool.singleton.runIfActive { try ZipWriter.archive(folder: project + "/output", to: result) }
            resultBytes = Int64(summary.archiveBytes)
        } else {
            resultBytes = (try? FileManager.default.attributesOfItem(atPath: result)[.size] as? NSNumber)??.int64Value
        }

        var state = RunState(jobID: message.jobID, status: .succeeded, resultBytes: resultBytes, startedAt: startedAt, finishedAt: Date())
        if outcome.timedOut {
            state.status = .timedOut
            state.reason = "The job ran longer than its time limit of \(message.limits.timeLimitSeconds) s and was stopped."
        } else if let signal = outcome.signal {
            state.status = .killed
            state.reason = "code.py was ended by signal \(signal)."
        } else if outcome.exitCode != 0 {
            state.status = .failed
            state.exitCode = outcome.exitCode
            state.reason = "code.py exited with code \(outcome.exitCode); see stderr."
        } else {
            state.exitCode = 0
        }
        return state
    }

    static func sha256(of path: String) throws -> String {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
