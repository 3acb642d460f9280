@testable import Backend
import FerryContracts
import FerryTestSupport
import Foundation
import Logging
import Testing

/// A Backend started on an older database brings it up to date in place, and one started on a
/// database a newer Backend migrated refuses it instead of misreading it. The compose stack's
/// upgrade test does the same with the previous release's images.
@Suite("Database upgrades")
struct SchemaUpgradeTests {
    /// A database as the previous schema left it: units known by their own URLs, one of them running
    /// a job. After the upgrade only the one with a running job is still listed (until its next
    /// report); each is known again by the name its Consumer now reports.
    @Test func unitsKnownByTheirOldNamesAreForgottenUnlessTheyRunAJob() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("ferry.sqlite")
        var store = try await JobStore.open(path: path, logger: Logger(label: "test"))
        let owner = try #require(try await store.createUser(username: "ada", passwordHash: "x"))
        for (index, unit) in ["http://processing-unit-1:8084", "http://processing-unit-2:8084"].enumerated() {
            let job = Job(id: UUID().uuidString.lowercased(), project: "p", owner: owner.username, status: .queued, submittedAt: Date(), timeLimit: 60, memoryLimit: 64)
            try await store.insert(job, ownerID: owner.id)
            try await store.advance(job.id, to: index == 0 ? .succeeded : .running, at: Date(), unit: unit)
        }
        #expect(try await store.units().map(\.name) == ["http://processing-unit-1:8084", "http://processing-unit-2:8084"])
        _ = try await store.connection.query("PRAGMA user_version = \(JobStore.migrations.count - 1)")
        try await store.close()

        store = try await JobStore.open(path: path, logger: Logger(label: "test"))
        #expect(try await store.units().map(\.name) == ["http://processing-unit-2:8084"])
        // The running job ends, reported by its Consumer under the unit's new name: only that is left.
        let running = try await store.jobs(ownerID: owner.id, status: .running, limit: 10, before: nil).jobs
        try await store.advance(try #require(running.first).id, to: .succeeded, at: Date(), unit: "http://consumer-2:8083/unit")
        #expect(try await store.units().map(\.name) == ["http://consumer-2:8083/unit"])
        #expect(try await store.connection.query("PRAGMA user_version").first?.column("user_version")?.integer == JobStore.migrations.count)
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
