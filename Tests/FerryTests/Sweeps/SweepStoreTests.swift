@testable import Backend
import FerryContracts
import FerryTestSupport
import Foundation
import Logging
import Testing

/// The sweep's throttle as the database keeps it: held runs go in index order, never more than the
/// throttle at once, and each message carries its run's parameters.
@Suite("Sweeps in the database")
struct SweepStoreTests {
    @Test func heldRunsGoInOrderWithinTheThrottleAndCarryTheirParameters() async throws {
        let directory = try TemporaryDirectory()
        let store = try await JobStore.open(path: directory.file("ferry.sqlite"), logger: Logger(label: "test"))
        defer { Task { try? await store.close() } }
        let owner = try #require(try await store.createUser(username: "ada", passwordHash: "x"))
        let sweepID = UUID().uuidString.lowercased()
        let plan = try SweepPlan.grid("cutoff=8,10,12\nseed=1..2", maxRuns: 100)
        let runs = plan.runs.indices.map { index in
            let parameters = plan.parameters(ofRun: index)
            return (job: Job(
                id: UUID().uuidString.lowercased(), project: "p", owner: owner.username, status: .submitted, submittedAt: Date(), timeLimit: 60, memoryLimit: 64,
                sweep: JobSweep(id: sweepID, index: index + 1, parameters: parameters)
            ), parameters: parameters)
        }
        try await store.insert(
            sweep: .init(id: sweepID, ownerID: owner.id, project: "p", createdAt: Date(), throttle: 2, names: plan.names, source: "grid", runs: runs.count),
            runs: runs, bundleBytes: 10
        )
        #expect(try await store.submittedJobs(before: Date().addingTimeInterval(60), limit: 100).isEmpty, "held runs are not the outbox's")

        let first = try await store.releaseRuns(sweepID: sweepID)
        #expect(first.map { $0.sweep?.index } == [1, 2])
        #expect(first.first?.sweep?.parameters == [.init(name: "cutoff", value: "8"), .init(name: "seed", value: "1")])
        for message in first {
            var checked = message
            checked.bundlePath = "bundles/\(message.jobID).zip"
            try checked.check(within: JobLimitMaxima())
            #expect(message.sweep?.sweepID == sweepID)
        }
        #expect(try await store.releaseRuns(sweepID: sweepID).isEmpty, "two are out: nothing more goes")

        try await store.advance(first[0].jobID, to: .succeeded, at: Date())
        #expect(try await store.releaseRuns(sweepID: sweepID).map { $0.sweep?.index } == [3])
        #expect(try await store.runs(ofSweep: sweepID).count == 6)
        #expect(try await store.holdings(ownerID: owner.id).storedBytes == 10, "the shared bundle counts once")
    }
}
