@testable import Backend
import FerryContracts
import FerryService
import FerryTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// Records what the Backend hands to the Producer, or fails like a Producer that is down.
final class RecordingQueue: JobQueue {
    let messages = Mutex<[JobMessage]>([])
    let available: Bool

    init(available: Bool = true) { self.available = available }

    func enqueue(_ message: JobMessage) async throws {
        guard available else { throw CancellationError() }
        messages.withLock { $0.append(message) }
    }
}

/// Records the cancel requests the Backend publishes and answers a queue depth (7) and a number of
/// consumers (2 unless a test says otherwise).
final class RecordingControl: BrokerControl {
    let requests = Mutex<[CancelRequest]>([])
    let consumers = Mutex(2)

    func cancel(_ request: CancelRequest) async throws {
        requests.withLock { $0.append(request) }
    }

    func jobsWaiting() async throws -> (messages: Int, consumers: Int) { (7, consumers.withLock { $0 }) }
}

@Suite("Backend API through its router")
struct BackendRouterTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let store: JobStore
        let queue: RecordingQueue
        let control: RecordingControl
        let app: Application<RouterResponder<BackendContext>>
    }

    /// The test Backend's accounts: cheap hashes, a quick login slowdown.
    static var testAuth: AuthSettings {
        var auth = AuthSettings(bcryptCost: 4)
        // A first wait long enough that a loaded machine still sees it.
        auth.accountThrottle = LoginThrottle(freeAttempts: 3, firstDelay: 60)
        return auth
    }

    static func fixture(producerAvailable: Bool = true, auth: AuthSettings = testAuth, userLimits: UserLimits = UserLimits()) async throws -> Fixture {
        let directory = try TemporaryDirectory()
        let store = try await JobStore.open(path: directory.file("backend/ferry.sqlite"), logger: Logger(label: "test"))
        var settings = JobSettings(dataDirectory: directory.path)
        settings.userLimits = userLimits
        settings.waitNoticeSeconds = 0  // a waiting job says why at once
        try FileManager.default.createDirectory(atPath: settings.bundles, withIntermediateDirectories: true)
        let queue = RecordingQueue(available: producerAvailable)
        let control = RecordingControl()
        let router = router(store: store, queue: queue, control: control, settings: settings, auth: auth)
        return Fixture(directory: directory, store: store, queue: queue, control: control, app: Application(router: router))
    }

    static func router(store: JobStore, queue: RecordingQueue, control: RecordingControl, settings: JobSettings, auth: AuthSettings = testAuth) -> Router<BackendContext> {
        buildBackendRouter(store: store, queue: queue, control: control, settings: settings, auth: auth, logger: Logger(label: "test"))
    }

    /// Runs `body` against a fresh Backend router and closes its database afterwards.
    static func withFixture(
        producerAvailable: Bool = true, auth: AuthSettings = testAuth, userLimits: UserLimits = UserLimits(),
        _ body: @escaping @Sendable (Fixture, any TestClientProtocol) async throws -> Void
    ) async throws {
        let fixture = try await fixture(producerAvailable: producerAvailable, auth: auth, userLimits: userLimits)
        do {
            try await fixture.app.test(.router) { client in try await body(fixture, client) }
        } catch {
            try await fixture.store.close()
            throw error
        }
        try await fixture.store.close()
    }

    static func bundle(_ files: [String: String]) -> ByteBuffer {
        var zip = RawZipBuilder()
        for (name, text) in files.sorted(by: { $0.key < $1.key }) { zip.file(name, text) }
        return ByteBuffer(bytes: zip.bytes())
    }

    @Test func registerLoginUploadAndSeeOnlyYourOwnJobs() async throws {
        try await Self.withFixture() { fixture, client in
            let alice = try await client.account("alice")
            let bob = try await client.account("bob")
            let job = try await client.execute(
                uri: "/api/v1/jobs?timeLimit=60", method: .post,
                headers: [.authorization: "Bearer \(alice)", .contentType: "application/zip"],
                body: Self.bundle(["demo/code.py": "print(1)"])
            ) { response -> Job in
                #expect(response.status == .created)
                return try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(job.project == "demo")
            #expect(job.status == .queued)
            #expect(job.owner == "alice")
            #expect(job.timeLimit == 60)
            let message = try #require(fixture.queue.messages.withLock { $0.first })
            #expect(message.jobID == job.id && message.bundlePath == "bundles/\(job.id).zip")
            #expect(FileManager.default.fileExists(atPath: fixture.directory.file("bundles/\(job.id).zip")))

            for path in ["/api/v1/jobs/\(job.id)", "/api/v1/jobs/\(job.id)/log", "/api/v1/jobs/\(job.id)/result"] {
                try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer \(bob)"]) { response in
                    #expect(response.status == .notFound, "\(path)")
                    #expect(String(buffer: response.body).contains("job.not_found"))
                }
            }
            try await client.execute(uri: "/api/v1/jobs/\(UUID())", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer \(bob)"]) { response in
                let page = try JSONDecoder.ferry().decode(JobPage.self, from: response.body)
                #expect(page.jobs.isEmpty)
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                let page = try JSONDecoder.ferry().decode(JobPage.self, from: response.body)
                #expect(page.jobs.map(\.id) == [job.id])
            }
        }
    }

    @Test func withoutATokenNothingIsServed() async throws {
        try await Self.withFixture() { fixture, client in
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer not-a-token"]) { response in
                #expect(response.status == .unauthorized)
                #expect(String(buffer: response.body).contains("auth.required"))
            }
        }
    }

    @Test func invalidBundlesAreRefusedWithTheirCodeAndNeverBecomeJobs() async throws {
        try await Self.withFixture() { fixture, client in
            let token = try await client.account("carol")
            let cases: [(ByteBuffer, String)] = [
                (Self.bundle(["demo/main.py": "print(1)"]), "bundle.missing_code_py"),
                (Self.bundle(["demo/code.py": "", "demo/requirements.txt": "--index-url http://evil.example/simple\nnumpy\n"]), "bundle.requirements_option"),
                (ByteBuffer(string: "not a zip at all, just text that is long enough to be read"), "bundle.not_a_zip"),
                (ByteBuffer(), "bundle.empty"),
            ]
            for (body, code) in cases {
                try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"], body: body) { response in
                    #expect(response.status == .unprocessableContent, "\(code)")
                    #expect(String(buffer: response.body).contains(code))
                }
            }
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.directory.file("bundles"))
            #expect(leftovers.isEmpty, "refused uploads left files: \(leftovers)")
        }
    }

    @Test func limitsAboveTheMaximaAreRefused() async throws {
        try await Self.withFixture() { fixture, client in
            let token = try await client.account("dave")
            try await client.execute(uri: "/api/v1/jobs?timeLimit=999999", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"], body: Self.bundle(["d/code.py": ""])) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("job.limit_too_high"))
            }
        }
    }

    @Test func anUploadStaysSubmittedWhenTheProducerIsDown() async throws {
        try await Self.withFixture(producerAvailable: false) { fixture, client in
            let token = try await client.account("erin")
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"], body: Self.bundle(["e/code.py": ""])) { response in
                #expect(response.status == .created)
                let job = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(job.status == .submitted)
            }
        }
    }

    @Test func theSweeperQueuesJobsThatStayedSubmittedOnce() async throws {
        try await Self.withFixture(producerAvailable: false) { fixture, client in
            let token = try await client.account("gina")
            let job = try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"], body: Self.bundle(["g/code.py": ""])) { response in
                try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(job.status == .submitted)
            // The Producer is still down: the sweeper leaves the job submitted for its next pass.
            #expect(await OutboxSweeper(store: fixture.store, queue: RecordingQueue(available: false), minimumAge: 0, logger: Logger(label: "test")).sweep() == 0)
            let producer = RecordingQueue()
            let sweeper = OutboxSweeper(store: fixture.store, queue: producer, minimumAge: 0, logger: Logger(label: "test"))
            #expect(await sweeper.sweep() == 1)
            #expect(await sweeper.sweep() == 0, "a queued job is not handed over again")
            let message = try #require(producer.messages.withLock { $0.first })
            #expect(message.jobID == job.id && message.bundlePath == "bundles/\(job.id).zip" && message.limits.timeLimitSeconds == job.timeLimit)
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                let current = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(current.status == .queued)
            }
        }
    }

    @Test func eventsOnlyMoveAJobForward() async throws {
        try await Self.withFixture() { fixture, client in
            let token = try await client.account("frank")
            let job = try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"], body: Self.bundle(["f/code.py": ""])) { response in
                try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(try await fixture.store.advance(job.id, to: .running, at: Date()))
            #expect(try await fixture.store.advance(job.id, to: .failed, at: Date(), exitCode: 3, reason: "exit 3"))
            let late = try await fixture.store.advance(job.id, to: .running, at: Date())
            let anotherFinal = try await fixture.store.advance(job.id, to: .succeeded, at: Date())
            #expect(!late && !anotherFinal)
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                let current = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(current.status == .failed && current.exitCode == 3 && current.startedAt != nil && current.finishedAt != nil)
            }
        }
    }
}


struct LoginToken: Decodable {
    var token: String
}

extension TestClientProtocol {
    /// Makes `name` the first administrator with the operator's setup token, and logs in; returns the bearer token.
    func administrator(_ name: String, store: JobStore) async throws -> String {
        let token = Tokens.generate()
        try await store.storeSetupToken(hash: Tokens.hash(token))
        let setup = ByteBuffer(string: #"{"token":"\#(token)","username":"\#(name)","password":"correct horse battery"}"#)
        try await execute(uri: "/api/v1/auth/setup", method: .post, headers: [.contentType: "application/json"], body: setup) { response in
            #expect(response.status == .created, "\(String(buffer: response.body))")
        }
        let credentials = ByteBuffer(string: #"{"username":"\#(name)","password":"correct horse battery"}"#)
        return try await execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: credentials) { response in
            #expect(response.status == .ok)
            return try JSONDecoder.ferry().decode(LoginToken.self, from: response.body).token
        }
    }

    /// Registers `name` and logs in; returns the bearer token.
    func account(_ name: String) async throws -> String {
        let credentials = ByteBuffer(string: #"{"username":"\#(name)","password":"correct horse battery"}"#)
        try await execute(uri: "/api/v1/auth/register", method: .post, headers: [.contentType: "application/json"], body: credentials) { response in
            #expect(response.status == .created)
        }
        return try await execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: credentials) { response in
            #expect(response.status == .ok)
            return try JSONDecoder.ferry().decode(LoginToken.self, from: response.body).token
        }
    }
}
