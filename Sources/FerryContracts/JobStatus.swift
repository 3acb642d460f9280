/// A job's place in its lifecycle (DESIGN.md, "Job lifecycle"). The raw values are part of the public API.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case submitted
    case queued
    case preparing
    case running
    case succeeded
    case failed
    case timedOut = "timed_out"
    case killed
    case canceled
    case error

    /// A finished job never changes status again: late or repeated events are ignored.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .timedOut, .killed, .canceled, .error: true
        case .submitted, .queued, .preparing, .running: false
        }
    }

    /// Where the status sits in the lifecycle; an event may only move a job forward.
    public var order: Int {
        switch self {
        case .submitted: 0
        case .queued: 1
        case .preparing: 2
        case .running: 3
        case .succeeded, .failed, .timedOut, .killed, .canceled, .error: 4
        }
    }

    /// Whether a job in this status may move to `next`. Final statuses accept nothing, so a late or
    /// duplicated event can never move a finished job back; cancellation and infrastructure errors
    /// may end a job from any unfinished status. The one step back: a job whose environment was
    /// prepared is `queued` again while it waits in a cluster's queue (the Slurm executor), and
    /// `running` once the cluster starts it; a job that ran never waits again.
    public func canMove(to next: JobStatus) -> Bool {
        guard !isFinal else { return false }
        if self == .preparing && next == .queued { return true }
        return next.order > order
    }
}
