import FerryContracts
import Foundation
import Logging
import NIOPosix
import SQLiteNIO
import ServiceLifecycle

/// Users, tokens and jobs in one SQLite file on the Backend's own volume (WAL, synchronous=FULL: a
/// job that was answered 201 is on disk). Status changes are single UPDATE statements that only move a
/// job forward, so concurrent requests and late or repeated events can never move it back.
final class JobStore: Sendable, Service {
    /// Used by this type's extensions (accounts, limits); nothing else touches it.
    let connection: SQLiteConnection
    /// SQLite's calls block; they get a thread of their own instead of NIO's shared pool (one thread
    /// per core), where they would queue behind uploads and bundle checks.
    private let threadPool: NIOThreadPool

    private init(connection: SQLiteConnection, threadPool: NIOThreadPool) {
        self.connection = connection
        self.threadPool = threadPool
    }

    static func open(path: String, logger: Logger) async throws -> JobStore {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let connection = try await SQLiteConnection.open(
            storage: .file(path: path), threadPool: threadPool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()
        )
        let store = JobStore(connection: connection, threadPool: threadPool)
        try await store.migrate()
        return store
    }

    func close() async throws {
        try await connection.close()
        try await threadPool.shutdownGracefully()
    }

    /// Keeps the database open while the service runs and closes it after the HTTP server has stopped.
    func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// The schema, in steps; `PRAGMA user_version` records how many have run, so an existing
    /// database is brought up to date in place when a new Backend starts on it.
    private static let migrations: [[String]] = [
        [
            """
            CREATE TABLE IF NOT EXISTS users (
                id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE,
                password_hash TEXT NOT NULL, created_at REAL NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS tokens (
                hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                expires_at REAL NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                owner_id TEXT NOT NULL REFERENCES users(id), project TEXT NOT NULL, status TEXT NOT NULL,
                exit_code INTEGER, reason TEXT, submitted_at REAL NOT NULL, started_at REAL, finished_at REAL,
                result_bytes INTEGER, time_limit INTEGER NOT NULL, memory_limit INTEGER NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner_id, seq)",
            "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)",
        ],
        [
            // Administrators and disabled accounts; browser sessions with their CSRF tokens.
            "ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",
            "UPDATE users SET is_admin = 1 WHERE rowid = (SELECT MIN(rowid) FROM users)",
            """
            CREATE TABLE sessions (
                hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                csrf TEXT NOT NULL, expires_at REAL NOT NULL)
            """,
            // Which unit reported a job last, and when its status last changed; every change is
            // recorded in job_history by triggers, in the same statement that makes it.
            "ALTER TABLE jobs ADD COLUMN unit TEXT",
            "ALTER TABLE jobs ADD COLUMN status_at REAL",
            "UPDATE jobs SET status_at = COALESCE(finished_at, started_at, submitted_at)",
            """
            CREATE TABLE job_history (
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, status TEXT NOT NULL, at REAL NOT NULL, reason TEXT)
            """,
            "CREATE INDEX job_history_job ON job_history(job_id)",
            """
            CREATE TRIGGER jobs_history_insert AFTER INSERT ON jobs BEGIN
                INSERT INTO job_history (job_id, status, at) VALUES (NEW.id, NEW.status, NEW.submitted_at);
            END
            """,
            """
            CREATE TRIGGER jobs_history_update AFTER UPDATE OF status ON jobs WHEN NEW.status <> OLD.status BEGIN
                INSERT INTO job_history (job_id, status, at, reason) VALUES (NEW.id, NEW.status, NEW.status_at, NEW.reason);
            END
            """,
            // The results page filters by status and by project; both stay index scans.
            "CREATE INDEX jobs_owner_status ON jobs(owner_id, status, seq)",
            "CREATE INDEX jobs_owner_project ON jobs(owner_id, project, seq)",
            "CREATE TABLE units (name TEXT PRIMARY KEY, last_seen REAL NOT NULL)",
        ],
        [
            // A unit's last report is kept by a trigger, inside the transaction of the status change
            // it reported, instead of a statement (and an fsync) of its own for every event.
            """
            CREATE TRIGGER jobs_unit_seen AFTER UPDATE OF status ON jobs WHEN NEW.unit IS NOT NULL BEGIN
                INSERT OR REPLACE INTO units (name, last_seen) VALUES (
                    NEW.unit, MAX(NEW.status_at, COALESCE((SELECT last_seen FROM units WHERE name = NEW.unit), 0)));
            END
            """,
        ],
        [
            // The first administrator comes from the operator's one-time setup token, no longer from
            // being first to register; invite links for closed sign-up; the bytes of each bundle, for
            // the per-user storage limit.
            "CREATE TABLE setup (id INTEGER PRIMARY KEY CHECK (id = 1), token_hash TEXT NOT NULL, created_at REAL NOT NULL)",
            """
            CREATE TABLE invites (
                hash TEXT PRIMARY KEY, created_by TEXT REFERENCES users(id) ON DELETE SET NULL, created_at REAL NOT NULL,
                expires_at REAL NOT NULL, used_by TEXT REFERENCES users(id) ON DELETE SET NULL, used_at REAL)
            """,
            "ALTER TABLE jobs ADD COLUMN bundle_bytes INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX jobs_owner_submitted ON jobs(owner_id, submitted_at)",
        ],
        [
            // Retention: when a finished job's files (bundle, logs, result) were removed.
            "ALTER TABLE jobs ADD COLUMN files_removed_at REAL",
            "CREATE INDEX jobs_finished ON jobs(finished_at)",
        ],
    ]

    private func migrate() async throws {
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"] {
            _ = try await connection.query(pragma)
        }
        let version = try await connection.query("PRAGMA user_version").first?.column("user_version")?.integer ?? 0
        for (index, statements) in Self.migrations.enumerated() where index >= version {
            _ = try await connection.query("BEGIN IMMEDIATE")
            do {
                for statement in statements { _ = try await connection.query(statement) }
                _ = try await connection.query("PRAGMA user_version = \(index + 1)")
                _ = try await connection.query("COMMIT")
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    /// Answers when the database does (the health check).
    func ping() async throws {
        _ = try await connection.query("SELECT 1")
    }

    // MARK: Users, sessions and tokens

    static let userColumns = "users.id, users.username, users.is_admin, users.disabled"

    static func user(_ row: SQLiteRow) -> User? {
        guard let id = row.column("id")?.string, let name = row.column("username")?.string else { return nil }
        return User(id: id, username: name, isAdmin: row.column("is_admin")?.integer == 1, isDisabled: row.column("disabled")?.integer == 1)
    }

    /// Creates a user; nil when the name is taken. Only the operator's setup makes an administrator
    /// (`isAdmin`), never the order of registration.
    func createUser(username: String, passwordHash: String, isAdmin: Bool = false) async throws -> User? {
        let id = UUID().uuidString.lowercased()
        let rows = try await connection.query(
            """
            INSERT INTO users (id, username, password_hash, created_at, is_admin)
            VALUES (?, ?, ?, ?, ?) ON CONFLICT(username) DO NOTHING RETURNING \(Self.userColumns)
            """,
            [.text(id), .text(username), .text(passwordHash), .float(Date().timeIntervalSince1970), .integer(isAdmin ? 1 : 0)]
        )
        return rows.first.flatMap(Self.user)
    }

    func credentials(username: String) async throws -> (User, passwordHash: String)? {
        let rows = try await connection.query("SELECT \(Self.userColumns), password_hash FROM users WHERE username = ?", [.text(username)])
        guard let row = rows.first, let user = Self.user(row), let hash = row.column("password_hash")?.string else { return nil }
        return (user, hash)
    }

    func storeToken(hash: String, user: User, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO tokens (hash, user_id, expires_at) VALUES (?, ?, ?)",
            [.text(hash), .text(user.id), .float(expiresAt.timeIntervalSince1970)]
        )
    }

    /// Revokes every API token of the user.
    func deleteTokens(of user: User) async throws {
        _ = try await connection.query("DELETE FROM tokens WHERE user_id = ?", [.text(user.id)])
    }

    /// The enabled user an unexpired API token belongs to.
    func user(forTokenHash hash: String) async throws -> User? {
        let rows = try await connection.query(
            "SELECT \(Self.userColumns) FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ? AND tokens.expires_at > ? AND users.disabled = 0",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
        return rows.first.flatMap(Self.user)
    }

    func createSession(hash: String, user: User, csrf: String, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO sessions (hash, user_id, csrf, expires_at) VALUES (?, ?, ?, ?)",
            [.text(hash), .text(user.id), .text(csrf), .float(expiresAt.timeIntervalSince1970)]
        )
        // Expired sessions of anyone go when someone logs in; the table stays small without a timer.
        _ = try await connection.query("DELETE FROM sessions WHERE expires_at <= ?", [.float(Date().timeIntervalSince1970)])
    }

    /// The enabled user of an unexpired session and the session's CSRF token.
    func session(hash: String) async throws -> (user: User, csrf: String)? {
        let rows = try await connection.query(
            "SELECT \(Self.userColumns), sessions.csrf FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.hash = ? AND sessions.expires_at > ? AND users.disabled = 0",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
        guard let row = rows.first, let user = Self.user(row), let csrf = row.column("csrf")?.string else { return nil }
        return (user, csrf)
    }

    func deleteSession(hash: String) async throws {
        _ = try await connection.query("DELETE FROM sessions WHERE hash = ?", [.text(hash)])
    }

    /// Every account with its number of jobs, for administrators.
    func users() async throws -> [UserSummary] {
        let rows = try await connection.query(
            """
            SELECT \(Self.userColumns), users.created_at, (SELECT COUNT(*) FROM jobs WHERE jobs.owner_id = users.id) AS job_count
            FROM users ORDER BY users.created_at
            """
        )
        return rows.compactMap { row in
            Self.user(row).map {
                UserSummary(id: $0.id, username: $0.username, isAdmin: $0.isAdmin, disabled: $0.isDisabled,
                            createdAt: Date(timeIntervalSince1970: row.column("created_at")?.double ?? 0), jobs: row.column("job_count")?.integer ?? 0)
            }
        }
    }

    /// Disables or enables an account; a disabled account's sessions end at once. Returns whether it exists.
    func setDisabled(_ disabled: Bool, userID: String) async throws -> Bool {
        let rows = try await connection.query("UPDATE users SET disabled = ? WHERE id = ? RETURNING id", [.integer(disabled ? 1 : 0), .text(userID)])
        if disabled { _ = try await connection.query("DELETE FROM sessions WHERE user_id = ?", [.text(userID)]) }
        return !rows.isEmpty
    }

    // MARK: Jobs

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

    /// When a job was submitted, started and finished.
    struct Times: Sendable {
        var submitted: Date
        var started: Date?
        var finished: Date?
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

    /// `advance`, answering the job's times after the change (nil when it did not move), from the
    /// same statement: the event consumer records wait and run times without reading the job again.
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
                exit_code = COALESCE(?, exit_code), reason = COALESCE(?, reason), result_bytes = COALESCE(?, result_bytes),
                started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END,
                finished_at = CASE WHEN ? THEN ? ELSE finished_at END
            WHERE id = ? AND status IN (\(placeholders)) RETURNING submitted_at, started_at, finished_at
            """,
            [.text(status.rawValue), time, unit.map(SQLiteData.text) ?? .null, exitCode.map { .integer(Int($0)) } ?? .null,
             reason.map(SQLiteData.text) ?? .null, resultBytes.map { .integer(Int($0)) } ?? .null,
             .integer(status == .running ? 1 : 0), time, .integer(status.isFinal ? 1 : 0), time,
             .text(id)] + predecessors.map(SQLiteData.text)
        )
        return rows.first.flatMap(Self.times)
    }

    private static func times(_ row: SQLiteRow) -> Times? {
        guard let submitted = row.column("submitted_at")?.double else { return nil }
        return Times(
            submitted: Date(timeIntervalSince1970: submitted), started: row.column("started_at")?.double.map(Date.init(timeIntervalSince1970:)),
            finished: row.column("finished_at")?.double.map(Date.init(timeIntervalSince1970:))
        )
    }

    /// Jobs still `submitted` since before `date`, oldest first, as the messages that queue them.
    func submittedJobs(before date: Date, limit: Int) async throws -> [JobMessage] {
        let rows = try await connection.query(
            "SELECT id, owner_id, project, submitted_at, time_limit, memory_limit FROM jobs WHERE status = 'submitted' AND submitted_at < ? ORDER BY seq LIMIT ?",
            [.float(date.timeIntervalSince1970), .integer(limit)]
        )
        return rows.compactMap { row in
            guard let id = row.column("id")?.string, let owner = row.column("owner_id")?.string, let project = row.column("project")?.string,
                  let submitted = row.column("submitted_at")?.double else { return nil }
            return JobMessage(
                jobID: id, owner: owner, project: project, bundlePath: "bundles/\(id).zip",
                limits: JobLimits(timeLimitSeconds: row.column("time_limit")?.integer ?? 3600, memoryLimitMiB: row.column("memory_limit")?.integer ?? 2048),
                submittedAt: Date(timeIntervalSince1970: submitted)
            )
        }
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

    private static let select = """
        SELECT jobs.seq, jobs.id, jobs.project, users.username, jobs.unit, jobs.status, jobs.exit_code, jobs.reason, jobs.submitted_at,
               jobs.started_at, jobs.finished_at, jobs.result_bytes, jobs.time_limit, jobs.memory_limit
        FROM jobs JOIN users ON users.id = jobs.owner_id
        """

    private static func job(_ row: SQLiteRow) -> Job? {
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
            timeLimit: row.column("time_limit")?.integer ?? 0, memoryLimit: row.column("memory_limit")?.integer ?? 0
        )
    }
}
