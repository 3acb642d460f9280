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
    private let connection: SQLiteConnection
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

    private func migrate() async throws {
        for statement in [
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
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
        ] {
            _ = try await connection.query(statement)
        }
    }

    // MARK: Users and tokens

    /// Creates a user; nil when the name is taken.
    func createUser(username: String, passwordHash: String) async throws -> User? {
        let id = UUID().uuidString.lowercased()
        let rows = try await connection.query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(username) DO NOTHING RETURNING id",
            [.text(id), .text(username), .text(passwordHash), .float(Date().timeIntervalSince1970)]
        )
        return rows.isEmpty ? nil : User(id: id, username: username)
    }

    func credentials(username: String) async throws -> (User, passwordHash: String)? {
        let rows = try await connection.query("SELECT id, username, password_hash FROM users WHERE username = ?", [.text(username)])
        guard let row = rows.first, let id = row.column("id")?.string, let name = row.column("username")?.string,
              let hash = row.column("password_hash")?.string else { return nil }
        return (User(id: id, username: name), hash)
    }

    func storeToken(hash: String, user: User, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO tokens (hash, user_id, expires_at) VALUES (?, ?, ?)",
            [.text(hash), .text(user.id), .float(expiresAt.timeIntervalSince1970)]
        )
    }

    func user(forTokenHash hash: String) async throws -> User? {
        let rows = try await connection.query(
            "SELECT users.id, users.username FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ? AND tokens.expires_at > ?",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
        guard let row = rows.first, let id = row.column("id")?.string, let name = row.column("username")?.string else { return nil }
        return User(id: id, username: name)
    }

    // MARK: Jobs

    func insert(_ job: Job, ownerID: String) async throws {
        _ = try await connection.query(
            "INSERT INTO jobs (id, owner_id, project, status, submitted_at, time_limit, memory_limit) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [.text(job.id), .text(ownerID), .text(job.project), .text(job.status.rawValue), .float(job.submittedAt.timeIntervalSince1970),
             .integer(job.timeLimit), .integer(job.memoryLimit)]
        )
    }

    /// The job if it belongs to `owner`; another user's job is as absent as a missing one.
    func job(_ id: String, owner: User) async throws -> Job? {
        try await connection.query(Self.select + " WHERE jobs.id = ? AND jobs.owner_id = ?", [.text(id), .text(owner.id)]).first.flatMap(Self.job)
    }

    /// A page of the owner's jobs, newest first, after the cursor (a `seq`), optionally of one status.
    func jobs(owner: User, status: JobStatus?, limit: Int, before cursor: Int?) async throws -> (jobs: [Job], next: Int?) {
        var sql = Self.select + " WHERE jobs.owner_id = ?"
        var binds: [SQLiteData] = [.text(owner.id)]
        if let status { sql += " AND jobs.status = ?"; binds.append(.text(status.rawValue)) }
        if let cursor { sql += " AND jobs.seq < ?"; binds.append(.integer(cursor)) }
        sql += " ORDER BY jobs.seq DESC LIMIT ?"
        binds.append(.integer(limit + 1))
        let rows = try await connection.query(sql, binds)
        let page = rows.prefix(limit)
        let next = rows.count > limit ? page.last?.column("seq")?.integer : nil
        return (page.compactMap(Self.job), next)
    }

    /// Applies a status change if it moves the job forward; returns whether it did. Idempotent: a
    /// repeated or late event matches no row.
    @discardableResult
    func advance(_ id: String, to status: JobStatus, at date: Date, exitCode: Int32? = nil, reason: String? = nil, resultBytes: Int64? = nil) async throws -> Bool {
        let predecessors = JobStatus.allCases.filter { $0.canMove(to: status) }.map(\.rawValue)
        guard !predecessors.isEmpty else { return false }
        let placeholders = Array(repeating: "?", count: predecessors.count).joined(separator: ", ")
        let time = SQLiteData.float(date.timeIntervalSince1970)
        let rows = try await connection.query(
            """
            UPDATE jobs SET status = ?,
                exit_code = COALESCE(?, exit_code), reason = COALESCE(?, reason), result_bytes = COALESCE(?, result_bytes),
                started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END,
                finished_at = CASE WHEN ? THEN ? ELSE finished_at END
            WHERE id = ? AND status IN (\(placeholders)) RETURNING id
            """,
            [.text(status.rawValue), exitCode.map { .integer(Int($0)) } ?? .null, reason.map(SQLiteData.text) ?? .null,
             resultBytes.map { .integer(Int($0)) } ?? .null, .integer(status == .running ? 1 : 0), time, .integer(status.isFinal ? 1 : 0), time,
             .text(id)] + predecessors.map(SQLiteData.text)
        )
        return !rows.isEmpty
    }

    private static let select = """
        SELECT jobs.seq, jobs.id, jobs.project, users.username, jobs.status, jobs.exit_code, jobs.reason, jobs.submitted_at,
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
