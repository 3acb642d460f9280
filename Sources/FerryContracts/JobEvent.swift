import Foundation

/// The message on `ferry.events`: something that happened to a job, reported by a Consumer on behalf
/// of its ProcessingUnit. The Backend is the only writer of job state and applies these idempotently.
public struct JobEvent: Codable, Sendable, Equatable {
    public var jobID: String
    /// The status the job reached.
    public var status: JobStatus
    public var at: Date
    /// Which processing unit reported it, for operators.
    public var unit: String?
    /// The exit code of `code.py` once it ended, when it exited normally.
    public var exitCode: Int32?
    /// Why the job ended the way it did, in words a researcher can act on (`killed`, `error`, ...).
    public var reason: String?
    /// Size of `results/<job>.zip` for a finished job that produced one.
    public var resultBytes: Int64?

    public init(
        jobID: String, status: JobStatus, at: Date, unit: String? = nil,
        exitCode: Int32? = nil, reason: String? = nil, resultBytes: Int64? = nil
    ) {
        self.jobID = jobID
        self.status = status
        self.at = at
        self.unit = unit
        self.exitCode = exitCode
        self.reason = reason
        self.resultBytes = resultBytes
    }
}
