@testable import Backend
import FerryContracts
import FerryTestSupport
import Foundation
import Logging
import SQLiteNIO
import Testing

/// A Backend started on an older database brings it up to date in place, and one started on a
/// database a newer Backend migrated refuses it instead of misreading it. The compose stack's
/// upgrade test does the same with the previous release's images.
@Suite("Database upgrades")
struct SchemaUpgradeTests {
    /// A database at schema `version`, as a Backend of that time left it (its first `version` steps).
    static func database(at path: String, version: Int) async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        for statements in JobStore.migrations.prefix(version) {
            for statement in statements { _ = try await connection.query(statement) }
        }
        _ = try await connection.query("PRAGMA user_version = \(version)")
        return connection
    }

    /// A database as schema 6 left it: units known by their own URLs, one of them running a job.
    /// After the upgrade only the one with a running job is still listed (until its next report);
    /// each is known again by the name its Consumer now reports.
    @Test func unitsKnownByTheirOldNamesAreForgottenUnlessTheyRunAJob() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("ferry.sqlite")
        let old = try await Self.database(at: path, version: 5)
        let owner = UUID().uuidString.lowercased()
        _ = try await old.query("INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'ada', 'x', 0)", [.text(owner)])
        for (index, unit) in ["http://processing-unit-1:8084", "http://processing-unit-2:8084"].enumerated() {
            _ = try await old.query(
                "INSERT INTO jobs (id, owner_id, project, status, submitted_at, status_at, time_limit, memory_limit, unit) VALUES (?, ?, 'p', ?, 0, 0, 60, 64, ?)",
                [.text(UUID().uuidString.lowercased()), .text(owner), .text(index == 0 ? "succeeded" : "running"), .text(unit)]
            )
            _ = try await old.query("INSERT INTO units (name, last_seen) VALUES (?, 0)", [.text(unit)])
        }
        try await old.close()

        let store = try await JobStore.open(path: path, logger: Logger(label: "test"))
        #expect(try await store.units().map(\.name) == ["http://processing-unit-2:8084"])
        // The running job ends, reported by its Consumer under the unit's new name: only that is left.
        let running = try await store.jobs(ownerID: owner, status: .running, limit: 10, before: nil).jobs
        #expect(running.first?.sweep == nil, "a job from before sweeps is a single job")
        try await store.advance(try #require(running.first).id, to: .succeeded, at: Date(), unit: "http://consumer-2:8083/unit")
        #expect(try await store.units().map(\.name) == ["http://consumer-2:8083/unit"])
        #expect(try await store.connection.query("PRAGMA user_version").first?.column("user_version")?.integer == JobStore.migrations.count)
        try await store.close()
    }

    /// Jobs submitted before sweeps existed are still handed to the Producer by the outbox after the upgrade.
    @Test func submittedJobsFromBeforeSweepsAreStillQueued() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("ferry.sqlite")
        let old = try await Self.database(at: path, version: 6)
        let owner = UUID().uuidString.lowercased(), job = UUID().uuidString.lowercased()
        _ = try await old.query("INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'ada', 'x', 0)", [.text(owner)])
        _ = try await old.query(
            "INSERT INTO jobs (id, owner_id, project, status, submitted_at, status_at, time_limit, memory_limit) VALUES (?, ?, 'p', 'submitted', 0, 0, 60, 64)",
            [.text(job), .text(owner)]
        )
        try await old.close()
        let store = try await JobStore.open(path: path, logger: Logger(label: "test"))
        let waiting = try await store.submittedJobs(before: Date(), limit: 10)
        #expect(waiting.map(\.jobID) == [job] && waiting.first?.sweep == nil)
        try await store.close()
    }

    @Test func aDatabaseFromANewerFerryIsRefusedWithWhatToDo() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("ferry.sqlite")
        let store = try await JobStore.open(path: path, logger: Logger(label: "test"))
        _ = try await store.connection.query("PRAGMA user_version = \(JobStore.migrations.count + 3)")
        try await store.close()
        let error = await #expect(throws: ConfigurationError.self) { _ = try await JobStore.open(path: path, logger: Logger(label: "test")) }
        #expect(error?.message.contains("newer Ferry") == true && error?.message.contains("restore the backup") == true, "\(String(describing: error))")
    }
}
