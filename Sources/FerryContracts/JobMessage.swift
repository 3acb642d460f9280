import Foundation

/// The message on `ferry.jobs`: one job to run. It carries only ids and paths; the bundle itself
/// stays on the shared volume (DESIGN.md, "the data plane is the shared volume").
public struct JobMessage: Codable, Sendable, Equatable {
    /// Message format version, so a newer Consumer can refuse an older shape clearly.
    public var version: Int
    public var jobID: String
    public var owner: String
    /// The project folder's name, as found by the upload check.
    public var project: String
    /// The bundle's path relative to the data directory, e.g. `bundles/<job>.zip`.
    public var bundlePath: String
    public var limits: JobLimits
    public var submittedAt: Date
    /// Set for a run of a sweep: its parameters. Absent for a single job (and from older Backends).
    public var sweep: SweepRun?

    public init(
        jobID: String, owner: String, project: String, bundlePath: String,
        limits: JobLimits, submittedAt: Date, sweep: SweepRun? = nil, version: Int = 1
    ) {
        self.version = version
        self.jobID = jobID
        self.owner = owner
        self.project = project
        self.bundlePath = bundlePath
        self.limits = limits
        self.submittedAt = submittedAt
        self.sweep = sweep
    }
}

/// Resource limits of one job, already checked against the operator's maxima.
public struct JobLimits: Codable, Sendable, Equatable {
    /// Wall-clock seconds before the job ends `timed_out`.
    public var timeLimitSeconds: Int
    /// Memory in MiB before the job ends `killed`.
    public var memoryLimitMiB: Int

    public init(timeLimitSeconds: Int, memoryLimitMiB: Int) {
        self.timeLimitSeconds = timeLimitSeconds
        self.memoryLimitMiB = memoryLimitMiB
    }
}
