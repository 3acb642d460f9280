@testable import Backend
import FerryContracts
import FerryHTTPClient
import FerryTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The shared volume does not fill up by itself: finished jobs' files go after the retention (by
/// age and by total size), the API says so, and a unit on a nearly full volume starts nothing new.
@Suite("Retention and a full volume")
struct RetentionTests {
    @Test func finishedJobsLoseTheirFilesPastTheirTimeAndTheAPISaysSo() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let old = try await BackendSessionTests.upload(client, token: dana), recent = try await BackendSessionTests.upload(client, token: dana)
            let running = try await BackendSessionTests.upload(client, token: dana)
            try await fixture.store.advance(old.id, to: .succeeded, at: Date().addingTimeInterval(-3 * 86_400))
            try await fixture.store.advance(recent.id, to: .succeeded, at: Date())
            for job in [old, recent, running] {
                try fixture.directory.write("results/\(job.id).zip", "zip")
                try fixture.directory.write("jobs/\(job.id)/stdout.log", "log")
            }
            let sweeper = RetentionSweeper(store: fixture.store, dataDirectory: fixture.directory.path, settings: RetentionSettings(days: 2), meter: VolumeMeter(), logger: Logger(label: "test"))
            #expect(await sweeper.sweep() == [old.id])
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("results/\(old.id).zip")))
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("bundles/\(old.id).zip")))
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("jobs/\(old.id)")))
            for kept in [recent, running] { #expect(FileManager.default.fileExists(atPath: fixture.directory.file("results/\(kept.id).zip"))) }
            try await client.execute(uri: "/api/v1/jobs/\(old.id)/result", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                #expect(response.status == .gone && String(buffer: response.body).contains("job.files_removed"))
            }
            try await client.execute(uri: "/api/v1/jobs/\(old.id)", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                #expect(response.status == .ok, "the job itself stays, with its history")
            }
        }
    }

    /// Files that cannot be removed (here a log made immutable, which stops even root) leave the job
    /// unmarked, so the next sweep tries again; once they can go, they do.
    @Test func filesThatCannotBeRemovedAreTriedAgain() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let erin = try await client.account("erin")
            let old = try await BackendSessionTests.upload(client, token: erin)
            try await fixture.store.advance(old.id, to: .succeeded, at: Date().addingTimeInterval(-3 * 86_400))
            try fixture.directory.write("jobs/\(old.id)/stdout.log", "log")
            let log = fixture.directory.file("jobs/\(old.id)/stdout.log")
            let locked = try await ChildProcess.run("/usr/bin/chattr", ["+i", log], includingErrors: true)
            try #require(locked.status == 0, "chattr +i: \(locked.output)")
            let sweeper = RetentionSweeper(store: fixture.store, dataDirectory: fixture.directory.path, settings: RetentionSettings(days: 2), meter: VolumeMeter(), logger: Logger(label: "test"))
            #expect(await sweeper.sweep() == [], "a job whose files stay was counted as removed")
            _ = try await ChildProcess.run("/usr/bin/chattr", ["-i", log])
            #expect(await sweeper.sweep() == [old.id])
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("jobs/\(old.id)")))
        }
    }

    @Test func beyondTheTotalSizeTheOldestGoFirst() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let first = try await BackendSessionTests.upload(client, token: dana), second = try await BackendSessionTests.upload(client, token: dana)
            try await fixture.store.advance(first.id, to: .succeeded, at: Date().addingTimeInterval(-60), resultBytes: 800 << 20)
            try await fixture.store.advance(second.id, to: .succeeded, at: Date(), resultBytes: 800 << 20)
            let sweeper = RetentionSweeper(store: fixture.store, dataDirectory: fixture.directory.path, settings: RetentionSettings(maxBytes: 1 << 30), meter: VolumeMeter(), logger: Logger(label: "test"))
            #expect(await sweeper.sweep() == [first.id])
        }
    }

    @Test func theLimitsSayHowLongResultsAreKept() async throws {
        #expect(RetentionSettings(days: 30).summary == "Results are kept for 30 days after a job ends.")
        #expect(RetentionSettings().summary == nil)
    }

    /// A unit whose volume has less free space than `unit.min-free-mib` starts no job: it answers
    /// 503 run.volume_full, and its Consumer leaves the job in the queue.
    @Test func aUnitOnANearlyFullVolumeStartsNothing() async throws {
        let data = try TemporaryDirectory()
        let port = try unusedPort()
        let unit = try RunningService("ProcessingUnit", arguments: ["--http-port", "\(port)", "--data-dir", data.path, "--unit-sandbox", "none", "--unit-min-free-mib", "1000000000"])
        let client = HTTPClient()
        _ = try await unit.waitForHealth(port: port, client: client)
        let id = UUID().uuidString.lowercased()
        let message = JobMessage(jobID: id, owner: UUID().uuidString.lowercased(), project: "p", bundlePath: "bundles/\(id).zip",
                                 limits: JobLimits(timeLimitSeconds: 60, memoryLimitMiB: 512), submittedAt: Date())
        do {
            try await client.json("POST", "http://127.0.0.1:\(port)/internal/v1/runs", body: message, headers: [("Authorization", "Bearer \(RunningService.internalToken)")])
            Issue.record("a unit on a full volume took a job")
        } catch let error as HTTPClientError {
            #expect(error.status == 503 && error.description.contains("run.volume_full"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: data.file("jobs/\(id)")))
        try await client.shutdown()
        #expect(try await unit.terminate() == 0)
    }
}
