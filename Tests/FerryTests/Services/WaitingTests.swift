@testable import Backend
import FerryContracts
import FerryService
import FerryTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Nobody waits without a word why: when no processing unit takes jobs, /health, the pages' notice
/// and the waiting job say so; a job that waits says how many are ahead of it; the admin page names
/// the units that are down.
@Suite("Telling the people who wait")
struct WaitingTests {
    @Test func withNoUnitTakingJobsEveryoneIsTold() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let job = try await BackendSessionTests.upload(client, token: dana)
            try await client.execute(uri: "/api/v1/service", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let state = try JSONDecoder.ferry().decode(WaitingController.ServiceState.self, from: response.body)
                #expect(state.unitsTakingJobs == 2 && state.notice == nil)
            }
            fixture.control.consumers.withLock { $0 = 0 }
            try await client.execute(uri: "/api/v1/service", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let state = try JSONDecoder.ferry().decode(WaitingController.ServiceState.self, from: response.body)
                #expect(state.notice?.contains("No processing unit is taking jobs") == true)
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/waiting", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let waiting = try JSONDecoder.ferry().decode(WaitingController.Waiting.self, from: response.body)
                #expect(waiting.message?.contains("No processing unit is taking jobs") == true)
            }
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok, "the Backend itself is ready")
                let health = try JSONDecoder().decode(HealthStatus.self, from: response.body)
                #expect(health.notices?["units"] == "no processing unit is taking jobs", "\(health)")
            }
        }
    }

    @Test func aWaitingJobSaysHowManyAreAheadOfIt() async throws {
        try await BackendRouterTests.withFixture { _, client in
            let dana = try await client.account("dana"), erin = try await client.account("erin")
            _ = try await BackendSessionTests.upload(client, token: erin)
            _ = try await BackendSessionTests.upload(client, token: erin)
            let mine = try await BackendSessionTests.upload(client, token: dana)
            try await Task.sleep(for: .milliseconds(50))
            try await client.execute(uri: "/api/v1/jobs/\(mine.id)/waiting", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let waiting = try JSONDecoder.ferry().decode(WaitingController.Waiting.self, from: response.body)
                #expect(waiting.ahead == 2)
                #expect(waiting.message?.contains("2 jobs are ahead of yours") == true, "\(waiting)")
            }
            // Another user's job is as missing here as everywhere.
            try await client.execute(uri: "/api/v1/jobs/\(mine.id)/waiting", method: .get, headers: [.authorization: "Bearer \(erin)"]) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    /// A job whose environment is ready waits again in a cluster's queue (the Slurm executor): it is
    /// `queued` with the cluster's reason, which follows the cluster's word while it waits, and goes
    /// once it runs; a finished or running job never goes back to waiting.
    @Test func aJobWaitingInTheClustersQueueSaysWhy() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let job = try await BackendSessionTests.upload(client, token: dana)
            let store = fixture.store
            #expect(try await store.advance(job.id, to: .preparing, at: Date()))
            let priority = "Waiting in the cluster's queue: jobs with a higher priority are ahead of it (Slurm: Priority)."
            #expect(try await store.move(job.id, to: .queued, at: Date(), reason: priority) != nil)
            // The same status with a new reason: the reason follows the cluster; the history keeps one entry.
            let resources = "Waiting in the cluster's queue: the nodes it needs are busy (Slurm: Resources)."
            #expect(try await store.move(job.id, to: .queued, at: Date(), reason: resources) == nil)
            #expect(try await store.restate(job.id, status: .queued, reason: resources))
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let seen = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(seen.status == .queued && seen.reason == resources, "\(seen)")
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/waiting", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let waiting = try JSONDecoder.ferry().decode(WaitingController.Waiting.self, from: response.body)
                #expect(waiting.message == resources)
            }
            // Running: the wait is over and its reason with it; nothing moves it back.
            #expect(try await store.advance(job.id, to: .running, at: Date()))
            #expect(try await !store.advance(job.id, to: .queued, at: Date(), reason: priority))
            #expect(try await !store.restate(job.id, status: .queued, reason: priority))
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                let running = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(running.status == .running && running.reason == nil, "\(running)")
            }
            let history = try await store.history(of: job.id).map(\.status)
            #expect(history == [.submitted, .queued, .preparing, .queued, .running], "\(history)")
        }
    }

    @Test func theAdminPageNamesTheUnitsThatAreDown() async throws {
        let directory = try TemporaryDirectory()
        let store = try await JobStore.open(path: directory.file("ferry.sqlite"), logger: Logger(label: "test"))
        try FileManager.default.createDirectory(atPath: directory.file("bundles"), withIntermediateDirectories: true)
        let control = RecordingControl()
        let router = buildBackendRouter(
            store: store, queue: RecordingQueue(), control: control, settings: JobSettings(dataDirectory: directory.path), auth: BackendRouterTests.testAuth,
            probeUnit: { $0.contains(":8086") ? "it does not answer" : nil }, logger: Logger(label: "test")
        )
        try await Application(router: router).test(.router) { client in
            let admin = try await client.administrator("operator", store: store)
            for unit in ["http://127.0.0.1:8084", "http://127.0.0.1:8086"] {
                let job = try await BackendSessionTests.upload(client, token: admin)
                try await store.advance(job.id, to: .preparing, at: Date(), unit: unit)
            }
            try await client.execute(uri: "/api/v1/admin/overview", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                let overview = try JSONDecoder.ferry().decode(AdminController.Overview.self, from: response.body)
                let units = Dictionary(uniqueKeysWithValues: overview.units.map { ($0.name, $0) })
                #expect(units["http://127.0.0.1:8084"]?.answering == true)
                #expect(units["http://127.0.0.1:8086"]?.answering == false && units["http://127.0.0.1:8086"]?.problem == "it does not answer", "\(overview.units)")
            }
        }
        try await store.close()
    }
}
