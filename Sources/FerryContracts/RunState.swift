import Foundation

/// What a ProcessingUnit knows about one job's run; the Consumer turns changes into job events.
public struct RunState: Codable, Sendable, Equatable {
    public var jobID: String
    public var status: JobStatus
    public var exitCode: Int32?
    public var reason: String?
    public var resultBytes: Int64?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Set on an `error` that was Ferry's, not the job's (the volume failed, the bundle could not be
    /// read): the Consumer hands the job back to the queue instead of reporting it, so it is retried
    /// up to the queue's delivery limit and only then ends `error`.
    public var retryable: Bool?
    /// Counts the changes of the run on its unit, so that a long poll also sees a change that keeps
    /// the status (a new reason why a job waits in a cluster's queue).
    public var revision: Int?

    public init(
        jobID: String, status: JobStatus, exitCode: Int32? = nil, reason: String? = nil, resultBytes: Int64? = nil, startedAt: Date? = nil,
        finishedAt: Date? = nil, retryable: Bool? = nil
    ) {
        self.jobID = jobID
        self.status = status
        self.exitCode = exitCode
        self.reason = reason
        self.resultBytes = resultBytes
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.retryable = retryable
    }
}
