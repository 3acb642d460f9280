import FerryContracts
import Foundation
import SQLiteNIO

/// Jobs: inserted when accepted, moved only forward by status changes, listed for their owners and
/// for the administrator.
extension JobStore {
    func insert(_ job: Job, ownerID: String, bundleBytes: Int = 0) async throws {
        _ = try await connection.query(
            "INSERT INTO jobs (id, owner_id, project, status, submitted_at, status_at, time_limit, memory_limit, bundle_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [.text(job.id), .text(ownerID), .text(job.project), .text(job.status.rawValue), .float(job.submittedAt.timeIntervalSince1970),
             .float(job.submittedAt.timeIntervalSince1970), .integer(job.timeLimit), .integer(job.memoryLimit), .integer(bundleBytes)]
        )
    }

    /// The job if it belongs to `owner`; another user's job is as absent as a missing one.
    func job(_ id: String, owner: User) async throws -> Job? {
        try await connection.query(Self.select + " WHERE jobs.id = ? AND jobs.owner_id = ?", [.text(id), .text(owner.id)]).first.flatMap(Self.job)
    }

    /// A page of jobs, newest first, after the cursor (a `seq`): the owner's, or everyone's when
    /// `ownerID` is nil (administrators), optionally of one status and one project.
    func jobs(ownerID: String?, status: JobStatus?, project: String? = nil, limit: Int, before cursor: Int?) async throws -> (jobs: [Job], next: Int?) {
        var conditions: [String] = [], binds: [SQLiteData] = []
        if let ownerID { conditions.append("jobs.owner_id = ?"); binds.append(.text(ownerID)) }
        if let status { conditions.append("jobs.status = ?"); binds.append(.text(status.rawValue)) }
        if let project { conditions.append("jobs.project = ?"); binds.append(.text(project)) }
        if let cursor { conditions.append("jobs.seq < ?"); binds.append(.integer(cursor)) }
        var sql = Self.select
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY jobs.seq DESC LIMIT ?"
        binds.append(.integer(limit + 1))
        let rows = try await connection.query(sql, binds)
        let page = rows.prefix(limit)
        let next = rows.count > limit ? page.last?.column("seq")?.integer : nil
        return (page.compactMap(Self.job), next)
    }

    /// The owner's project names, for the results page's filter.
    func projects(ownerID: String) async throws -> [String] {
        try await connection.query("SELECT DISTINCT project FROM jobs WHERE owner_id = ? ORDER BY project LIMIT 500", [.text(ownerID)])
            .compactMap { $0.column("project")?.string }
    }

    /// When a job was submitted, started and finished, and the sweep it is a run of.
    struct Times: Sendable {
        var submitted: Date
        var started: Date?
        var finished: Date?
        var sweepID: String?
    }

    /// Applies a status change if it moves the job forward (and, with `from`, only out of those
    /// statuses); returns whether it did. Idempotent: a repeated or late event matches no row.
    @discardableResult
    func advance(
        _ id: String, to status: JobStatus, at date: Date, exitCode: Int32? = nil, reason: String? = nil, resultBytes: Int64? = nil,
        unit: String? = nil, from: Set<JobStatus>? = nil
    ) async throws -> Bool {
        try await move(id, to: status, at: date, exitCode: exitCode, reason: reason, resultBytes: resultBytes, unit: unit, from: from) != nil
    }

    /// `advance`, answering the job's times and sweep after the change (nil when it did not move), from
    /// the same statement: the event consumer records wait and run times and lets a sweep's next runs
    /// go without reading the job again.
    func move(
        _ id: String, to status: JobStatus, at date: Date, exitCode: Int32? = nil, reason: String? = nil, resultBytes: Int64? = nil,
        unit: String? = nil, from: Set<JobStatus>? = nil
    ) async throws -> Times? {
        let predecessors = JobStatus.allCases.filter { $0.canMove(to: status) && (from?.contains($0) ?? true) }.map(\.rawValue)
        guard !predecessors.isEmpty else { return nil }
        let placeholders = Array(repeating: "?", count: predecessors.count).joined(separator: ", ")
        let time = SQLiteData.float(date.timeIntervalSince1970)
        let rows = try await connection.query(
            """
            UPDATE jobs SET status = ?, status_at = ?, unit = COALESCE(?, unit),
                exit_code = COALESCE(?, exit_code), reason = CASE WHEN ? THEN COALESCE(?, reason) ELSE ? END, result_bytes = COALESCE(?, result_bytes),
                started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END,
                finished_at = CASE WHEN ? THEN ? ELSE finished_at END
            WHERE id = ? AND status IN (\(placeholders)) RETURNING submitted_at, started_at, finished_at, sweep_id
            """,
            [.text(status.rawValue), time, unit.map(SQLiteData.text) ?? .null, exitCode.map { .integer(Int($0)) } ?? .null,
             // A final status keeps what was said before when it says nothing itself; any other status
             // says why the job is where it is now, or nothing (a cluster's reason to wait ends with the wait).
             .integer(status.isFinal ? 1 : 0), reason.map(SQLiteData.text) ?? .null, reason.map(SQLiteData.text) ?? .null,
             resultBytes.map { .integer(Int($0)) } ?? .null,
             .integer(status == .running ? 1 : 0), time, .integer(status.isFinal ? 1 : 0), time,
             .text(id)] + predecessors.map(SQLiteData.text)
        )
        return rows.first.flatMap(Self.times)
    }

    /// A new reason for the status the job is in (a job waiting in a cluster's queue, with the
    /// cluster's reason, which changes while it waits); a finished job keeps its reason.
    @discardableResult
    func restate(_ id: String, status: JobStatus, reason: String?) async throws -> Bool {
        guard !status.isFinal else { return false }
        let rows = try await connection.query(
            "UPDATE jobs SET reason = ? WHERE id = ? AND status = ? AND reason IS NOT ? RETURNING id",
            [reason.map(SQLiteData.text) ?? .null, .text(id), .text(status.rawValue), reason.map(SQLiteData.text) ?? .null]
        )
        return !rows.isEmpty
    }

    private static func times(_ row: SQLiteRow) -> Times? {
        guard let submitted = row.column("submitted_at")?.double else { return nil }
        return Times(
            submitted: Date(timeIntervalSince1970: submitted), started: row.column("started_at")?.double.map(Date.init(timeIntervalSince1970:)),
            finished: row.column("finished_at")?.double.map(Date.init(timeIntervalSince1970:)),
            sweepID: row.column("sweep_id")?.string
        )
    }

    /// Jobs still `submitted` since before `date`, oldest first, as the messages that queue them.
    /// A sweep's run held back by its throttle is not one of them: it waits for its turn (`releaseRuns`).
    func submittedJobs(before date: Date, limit: Int) async throws -> [JobMessage] {
        let rows = try await connection.query(
            "SELECT \(Self.messageColumns) FROM jobs WHERE status = 'submitted' AND held = 0 AND submitted_at < ? ORDER BY seq LIMIT ?",
            [.float(date.timeIntervalSince1970), .integer(limit)]
        )
        return rows.compactMap(Self.message)
    }

    /// A run's message also says its sweep's size and throttle (for a Slurm job array), from the sweep's row.
    static let messageColumns = """
        id, owner_id, project, submitted_at, time_limit, memory_limit, sweep_id, sweep_index, params,
        (SELECT runs FROM sweeps WHERE sweeps.id = jobs.sweep_id) AS sweep_runs, (SELECT throttle FROM sweeps WHERE sweeps.id = jobs.sweep_id) AS sweep_throttle
        """

    /// The message that queues the job of a row with `messageColumns`.
    static func message(_ row: SQLiteRow) -> JobMessage? {
        guard let id = row.column("id")?.string, let owner = row.column("owner_id")?.string, let project = row.column("project")?.string,
              let submitted = row.column("submitted_at")?.double else { return nil }
        return JobMessage(
            jobID: id, owner: owner, project: project, bundlePath: "bundles/\(id).zip",
            limits: JobLimits(timeLimitSeconds: row.column("time_limit")?.integer ?? 3600, memoryLimitMiB: row.column("memory_limit")?.integer ?? 2048),
            submittedAt: Date(timeIntervalSince1970: submitted),
            sweep: sweep(row).map {
                SweepRun(sweepID: $0.id, index: $0.index, parameters: $0.parameters, runs: row.column("sweep_runs")?.integer, throttle: row.column("sweep_throttle")?.integer)
            }
        )
    }

    /// Every status the job reached, oldest first.
    func history(of jobID: String) async throws -> [JobHistoryEntry] {
        try await connection.query("SELECT status, at, reason FROM job_history WHERE job_id = ? ORDER BY rowid", [.text(jobID)]).compactMap { row in
            guard let status = row.column("status")?.string.flatMap(JobStatus.init(rawValue:)), let at = row.column("at")?.double else { return nil }
            return JobHistoryEntry(status: status, at: Date(timeIntervalSince1970: at), reason: row.column("reason")?.string)
        }
    }

    /// Deletes a finished job of the owner (its history goes with it); returns whether it did.
    func delete(_ id: String, ownerID: String) async throws -> Bool {
        let finals = JobStatus.allCases.filter(\.isFinal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try await !connection.query(
            "DELETE FROM jobs WHERE id = ? AND owner_id = ? AND status IN (\(finals)) RETURNING id", [.text(id), .text(ownerID)]
        ).isEmpty
    }

    /// How many jobs are in each status, for administrators.
    func statusCounts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await connection.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") {
            if let status = row.column("status")?.string { counts[status] = row.column("n")?.integer ?? 0 }
        }
        return counts
    }

    /// The units that reported events, with the jobs each is preparing or running.
    func units() async throws -> [UnitSummary] {
        var units: [String: UnitSummary] = [:]
        for row in try await connection.query("SELECT name, last_seen FROM units") {
            guard let name = row.column("name")?.string else { continue }
            units[name] = UnitSummary(name: name, lastSeen: Date(timeIntervalSince1970: row.column("last_seen")?.double ?? 0), jobs: [])
        }
        let active = try await connection.query(Self.select + " WHERE jobs.status IN ('preparing', 'running') AND jobs.unit IS NOT NULL ORDER BY jobs.seq")
        for row in active {
            guard let name = row.column("unit")?.string, let job = Self.job(row) else { continue }
            units[name, default: UnitSummary(name: name, lastSeen: job.submittedAt, jobs: [])].jobs.append(job)
        }
        return units.values.sorted { $0.name < $1.name }
    }

    static let select = """
        SELECT jobs.seq, jobs.id, jobs.project, users.username, jobs.unit, jobs.status, jobs.exit_code, jobs.reason, jobs.submitted_at,
               jobs.started_at, jobs.finished_at, jobs.result_bytes, jobs.time_limit, jobs.memory_limit,
               jobs.sweep_id, jobs.sweep_index, jobs.params
        FROM jobs JOIN users ON users.id = jobs.owner_id
        """

    static func job(_ row: SQLiteRow) -> Job? {
        guard let id = row.column("id")?.string, let project = row.column("project")?.string,
              let owner = row.column("username")?.string,
              let status = row.column("status")?.string.flatMap(JobStatus.init(rawValue:)),
              let submitted = row.column("submitted_at")?.double else { return nil }
        func date(_ column: String) -> Date? { row.column(column)?.double.map(Date.init(timeIntervalSince1970:)) }
        return Job(
            id: id, project: project, owner: owner, status: status,
            exitCode: row.column("exit_code")?.integer.map(Int32.init), reason: row.column("reason")?.string,
            submittedAt: Date(timeIntervalSince1970: submitted), startedAt: date("started_at"), finishedAt: date("finished_at"),
            resultBytes: row.column("result_bytes")?.integer.map(Int64.init),
            timeLimit: row.column("time_limit")?.integer ?? 0, memoryLimit: row.column("memory_limit")?.integer ?? 0,
            sweep: sweep(row)
        )
    }

    /// The run's sweep, index and parameters (stored as JSON) when the row is a sweep's run.
    static func sweep(_ row: SQLiteRow) -> JobSweep? {
        guard let id = row.column("sweep_id")?.string, let index = row.column("sweep_index")?.integer else { return nil }
        let parameters = row.column("params")?.string.flatMap { try? JSONDecoder().decode([SweepParameter].self, from: Data($0.utf8)) } ?? []
        return JobSweep(id: id, index: index, parameters: parameters)
    }
}
