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
    /// Used by this type's extensions (schema, users, jobs, accounts, limits); nothing else touches it.
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
        do {
            try await store.migrate()
        } catch {
            try? await store.close()
            throw error
        }
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
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"] {
            _ = try await connection.query(pragma)
        }
        let version = try await connection.query("PRAGMA user_version").first?.column("user_version")?.integer ?? 0
        // A database a newer Backend has migrated may hold what this one would misread or undo.
        guard version <= Self.migrations.count else {
            throw ConfigurationError(
                key: ConfigurationKeys.databasePath,
                message: "the database is from a newer Ferry (schema \(version); this Backend knows \(Self.migrations.count)); run the newer Backend again, or restore the backup taken before the upgrade"
            )
        }
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
}
