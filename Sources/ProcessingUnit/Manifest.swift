import FerryContracts
import Foundation

/// `jobs/<job>/manifest.json`: what ran and how, for the researcher and for a unit that restarts
/// (a job with a manifest is finished and is never run again).
struct Manifest: Codable, Sendable {
    struct Environment: Codable, Sendable {
        var key: String
        var cacheHit: Bool
    }

    var jobID: String
    var unit: String
    var python: String
    var status: JobStatus = .error
    var exitCode: Int32?
    var reason: String?
    var bundleSHA256: String?
    var environment: Environment?
    var packages: [String] = []
    var preparingSeconds: Double?
    var runningSeconds: Double?
    var totalSeconds: Double?
    /// The job's peak memory: its cgroup's high-water mark, or the largest process's when there is none.
    var peakMemoryBytes: UInt64?
    /// CPU seconds of the job, where the unit can measure them (not inside the sandbox yet).
    var cpuSeconds: Double?
    /// The cluster's job that ran code.py (`unit.executor=slurm`): its scheduler's id and attempt.
    var cluster: Cluster?
    var state: RunState?

    struct Cluster: Codable, Sendable {
        var scheduler: String
        var jobID: String
        var attempt: Int
    }

    init(jobID: String, unit: String, python: String) {
        self.jobID = jobID
        self.unit = unit
        self.python = python
    }

    /// Written to a temporary name and renamed: a manifest on disk is always whole.
    static func write(_ manifest: Manifest, final: RunState, to path: String) throws {
        var manifest = manifest
        manifest.state = final
        let encoder = JSONEncoder.ferry([.prettyPrinted, .sortedKeys])
        let temporary = path + ".partial"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// The final state recorded by an earlier run of this job, if it finished.
    static func finishedState(at path: String) -> RunState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return (try? JSONDecoder.ferry().decode(Manifest.self, from: data))?.state
    }
}
