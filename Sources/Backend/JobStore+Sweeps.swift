import FerryContracts
import Foundation
import SQLiteNIO

/// Sweeps: a row for the sweep and a job row per run. Runs past the sweep's throttle are inserted
/// `held`; `releaseRuns` lets the next ones go, in index order, as running ones end.
extension JobStore {
    struct SweepRecord: Sendable, Equatable {
        var id: String
        var ownerID: String
        var project: String
        var createdAt: Date
        var throttle: Int
        var names: [String]
        /// `grid` or `sweep.csv`, and the grid as written.
        var source: String
        var runs: Int
    }

    /// Records the sweep and all its runs (the first `throttle` ready to queue, the rest held), each
    /// run's job taking the given id, with the bundle counted once (the runs share one file).
    func insert(sweep: SweepRecord, runs: [(job: Job, parameters: [SweepParameter])], bundleBytes: Int) async throws {
        let names = String(decoding: try JSONEncoder().encode(sweep.names), as: UTF8.self)
        _ = try await connection.query(
            "INSERT INTO sweeps (id, owner_id, project, created_at, throttle, names, source, runs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [.text(sweep.id), .text(sweep.ownerID), .text(sweep.project), .float(sweep.createdAt.timeIntervalSince1970), .integer(sweep.throttle),
             .text(names), .text(sweep.source), .integer(sweep.runs)]
        )
        try await insertRuns(runs, sweepID: sweep.id, ownerID: sweep.ownerID, bundleBytes: bundleBytes)
    }

    /// Inserts runs of a sweep, all held: `releaseRuns` decides which go. Batches keep each
    /// statement within SQLite's bound-variable limit; the first run carries the bundle's bytes.
    func insertRuns(_ runs: [(job: Job, parameters: [SweepParameter])], sweepID: String, ownerID: String, bundleBytes: Int) async throws {
        let columns = 13
        for start in stride(from: 0, to: runs.count, by: 500) {
            let batch = runs[start..<min(start + 500, runs.count)]
            var binds: [SQLiteData] = []
            for (offset, run) in batch.enumerated() {
                let job = run.job, at = SQLiteData.float(job.submittedAt.timeIntervalSince1970)
                let parameters = String(decoding: try JSONEncoder().encode(run.parameters), as: UTF8.self)
                binds += [
                    .text(job.id), .text(ownerID), .text(job.project), .text(JobStatus.submitted.rawValue), at, at, .integer(job.timeLimit),
                    .integer(job.memoryLimit), .integer(start + offset == 0 ? bundleBytes : 0), .text(sweepID), .integer(job.sweep?.index ?? start + offset + 1),
                    .text(parameters), job.reason.map(SQLiteData.text) ?? .null,
                ]
            }
            let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ", 1)"
            _ = try await connection.query(
                """
                INSERT INTO jobs (id, owner_id, project, status, submitted_at, status_at, time_limit, memory_limit, bundle_bytes,
                                  sweep_id, sweep_index, params, reason, held)
                VALUES \(Array(repeating: row, count: batch.count).joined(separator: ", "))
                """,
                binds
            )
        }
    }

    /// Lets held runs of the sweep go, lowest index first, while fewer than its throttle are
    /// waiting in the queue, preparing or running; answers the messages that queue them. One
    /// statement: two callers at once cannot both fill the same free place.
    func releaseRuns(sweepID: String) async throws -> [JobMessage] {
        let active = "'submitted', 'queued', 'preparing', 'running'"
        let rows = try await connection.query(
            """
            UPDATE jobs SET held = 0, reason = NULL WHERE id IN (
                SELECT id FROM jobs WHERE sweep_id = ?1 AND held = 1 AND status = 'submitted' ORDER BY sweep_index, seq
                LIMIT MAX(0, (SELECT throttle FROM sweeps WHERE id = ?1)
                             - (SELECT COUNT(*) FROM jobs WHERE sweep_id = ?1 AND held = 0 AND status IN (\(active)))))
            RETURNING \(Self.messageColumns)
            """,
            [.text(sweepID)]
        )
        return rows.compactMap(Self.message).sorted { ($0.sweep?.index ?? 0) < ($1.sweep?.index ?? 0) }
    }

    /// Sweeps with runs held back, for the outbox's pass (a run that ended while the Backend was down).
    func sweepsWithHeldRuns() async throws -> [String] {
        try await connection.query("SELECT DISTINCT sweep_id FROM jobs WHERE held = 1 AND status = 'submitted' AND sweep_id IS NOT NULL LIMIT 200")
            .compactMap { $0.column("sweep_id")?.string }
    }

    /// The sweep if it belongs to `ownerID`; another user's sweep is as absent as a missing one.
    func sweep(_ id: String, ownerID: String) async throws -> SweepRecord? {
        try await connection.query("SELECT * FROM sweeps WHERE id = ? AND owner_id = ?", [.text(id), .text(ownerID)]).first.flatMap(Self.sweepRecord)
    }

    /// The owner's sweeps, newest first, with how many of their runs (the latest job of each place)
    /// are in each status, counted in one statement (the results page asks every few seconds).
    func sweeps(ownerID: String, limit: Int) async throws -> [(sweep: SweepRecord, counts: [String: Int])] {
        let sweeps = try await connection.query("SELECT * FROM sweeps WHERE owner_id = ? ORDER BY created_at DESC LIMIT ?", [.text(ownerID), .integer(limit)])
            .compactMap(Self.sweepRecord)
        guard !sweeps.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: sweeps.count).joined(separator: ", ")
        var counts: [String: [String: Int]] = [:]
        for row in try await connection.query(
            """
            SELECT sweep_id, status, COUNT(*) AS n FROM jobs WHERE seq IN (
                SELECT MAX(seq) FROM jobs WHERE sweep_id IN (\(placeholders)) GROUP BY sweep_id, sweep_index)
            GROUP BY sweep_id, status
            """,
            sweeps.map { .text($0.id) }
        ) {
            guard let sweep = row.column("sweep_id")?.string, let status = row.column("status")?.string else { continue }
            counts[sweep, default: [:]][status] = row.column("n")?.integer ?? 0
        }
        return sweeps.map { ($0, counts[$0.id] ?? [:]) }
    }

    static func counts(_ runs: [Job]) -> [String: Int] {
        runs.reduce(into: [:]) { $0[$1.status.rawValue, default: 0] += 1 }
    }

    /// The runs of a sweep, one per index: the latest job of each (a re-run replaces a failed one).
    func runs(ofSweep id: String) async throws -> [Job] {
        try await connection.query(
            Self.select + """
             WHERE jobs.seq IN (SELECT MAX(seq) FROM jobs WHERE sweep_id = ? GROUP BY sweep_index) ORDER BY jobs.sweep_index
            """,
            [.text(id)]
        ).compactMap(Self.job)
    }

    private static func sweepRecord(_ row: SQLiteRow) -> SweepRecord? {
        guard let id = row.column("id")?.string, let owner = row.column("owner_id")?.string, let project = row.column("project")?.string,
              let created = row.column("created_at")?.double, let throttle = row.column("throttle")?.integer else { return nil }
        let names = row.column("names")?.string.flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? []
        return SweepRecord(
            id: id, ownerID: owner, project: project, createdAt: Date(timeIntervalSince1970: created), throttle: throttle, names: names,
            source: row.column("source")?.string ?? "", runs: row.column("runs")?.integer ?? 0
        )
    }
}
