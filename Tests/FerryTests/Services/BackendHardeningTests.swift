@testable import Backend
import FerryContracts
import FerryService
import FerryTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import HummingbirdTesting
import NIOCore
import Testing

/// Accounts and limits an attacker would try: who may sign up, what a password change ends, how
/// much one user may hold, what a form may carry, how user bytes are served.
@Suite("Backend hardening")
struct BackendHardeningTests {
    static let json: HTTPFields = [.contentType: "application/json"]

    static func credentials(_ name: String, invite: String? = nil) -> ByteBuffer {
        ByteBuffer(string: #"{"username":"\#(name)","password":"correct horse battery"\#(invite.map { #","invite":"\#($0)""# } ?? "")}"#)
    }

    @Test func closedRegistrationTakesNobodyAndInviteRegistrationOnlyOnePersonPerLink() async throws {
        var closed = BackendRouterTests.testAuth
        closed.registration = .closed
        try await BackendRouterTests.withFixture(auth: closed) { fixture, client in
            try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.json, body: Self.credentials("walk-in")) { response in
                #expect(response.status == .forbidden && String(buffer: response.body).contains("auth.registration_closed"))
            }
            #expect(try await fixture.store.credentials(username: "walk-in") == nil)
        }
        var invite = BackendRouterTests.testAuth
        invite.registration = .invite
        try await BackendRouterTests.withFixture(auth: invite) { fixture, client in
            try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.json, body: Self.credentials("walk-in")) { response in
                #expect(response.status == .forbidden && String(buffer: response.body).contains("auth.invite_required"))
            }
            let admin = try await client.administrator("lab-head", store: fixture.store)
            struct Issued: Decodable { var token: String; var path: String }
            let issued = try await client.execute(uri: "/api/v1/admin/invites", method: .post, headers: [.authorization: "Bearer \(admin)"]) { response in
                #expect(response.status == .created)
                return try JSONDecoder.ferry().decode(Issued.self, from: response.body)
            }
            #expect(issued.path == "/register?invite=\(issued.token)")
            try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.json, body: Self.credentials("guest", invite: Tokens.generate())) { response in
                #expect(response.status == .forbidden && String(buffer: response.body).contains("auth.invite_invalid"))
            }
            try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.json, body: Self.credentials("newcomer", invite: issued.token)) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.json, body: Self.credentials("second-user", invite: issued.token)) { response in
                #expect(response.status == .forbidden, "an invitation let a second person in")
            }
            try await client.execute(uri: "/api/v1/admin/invites", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                #expect(String(buffer: response.body).contains(#""usedBy":"newcomer""#))
                #expect(!String(buffer: response.body).contains(issued.token), "the list shows a usable token")
            }
        }
    }

    @Test func administratorsAreNamedByAccountIDNotByAName() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let alice = try await client.account("alice")
            let aliceID = try #require(try await fixture.store.credentials(username: "alice")).0.id
            var auth = BackendRouterTests.testAuth
            auth.adminIDs = [aliceID]
            let router = BackendRouterTests.router(store: fixture.store, queue: fixture.queue, control: fixture.control, settings: JobSettings(dataDirectory: fixture.directory.path), auth: auth)
            try await Application(router: router).test(.router) { named in
                try await named.execute(uri: "/api/v1/admin/overview", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                    #expect(response.status == .ok)
                }
                // Another account with a name that looks like alice's is nobody special.
                let lookalike = try await named.account("Alice2")
                try await named.execute(uri: "/api/v1/admin/overview", method: .get, headers: [.authorization: "Bearer \(lookalike)"]) { response in
                    #expect(response.status == .forbidden)
                }
            }
        }
    }

    @Test func aPasswordChangeEndsEveryOtherSessionAndToken() async throws {
        try await BackendRouterTests.withFixture { _, client in
            let script = try await client.account("carol")
            let (cookie, csrf) = try await client.execute(uri: "/api/v1/auth/session", method: .post, headers: Self.json, body: Self.credentials("carol")) { response in
                let value = try #require(response.headers[.setCookie]?.split(separator: ";").first.map(String.init))
                return (value, try JSONDecoder.ferry().decode(SessionAnswer.self, from: response.body).csrfToken ?? "")
            }
            let other = try await client.execute(uri: "/api/v1/auth/session", method: .post, headers: Self.json, body: Self.credentials("carol")) { response in
                try #require(response.headers[.setCookie]?.split(separator: ";").first.map(String.init))
            }
            let change = ByteBuffer(string: #"{"currentPassword":"correct horse battery","newPassword":"a brand new password"}"#)
            try await client.execute(uri: "/api/v1/auth/password", method: .post, headers: [.cookie: cookie, Session.csrfHeader: csrf, .contentType: "application/json"], body: change) { response in
                #expect(response.status == .noContent, "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok, "the session that changed the password ended")
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.cookie: other]) { response in
                #expect(response.status == .unauthorized, "another session outlived the password change")
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer \(script)"]) { response in
                #expect(response.status == .unauthorized, "an API token outlived the password change")
            }
            try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.json, body: Self.credentials("carol")) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }

    /// An unknown name is checked against a hash of the configured cost, not a cheaper one.
    @Test func unknownUserNamesCostWhatKnownOnesDo() async throws {
        let directory = try TemporaryDirectory()
        let store = try await JobStore.open(path: directory.file("ferry.sqlite"), logger: .init(label: "test"))
        defer { Task { try? await store.close() } }
        for cost: UInt8 in [4, 6] {
            var auth = BackendRouterTests.testAuth
            auth.bcryptCost = cost
            let hash = AuthController(store: store, settings: auth).unknownUserHash
            #expect(hash.split(separator: "$").dropFirst().first == Bcrypt.hash("x", cost: cost).split(separator: "$").dropFirst().first)
            #expect(hash.split(separator: "$")[1] == String(format: "%02d", cost), "\(hash)")
        }
    }

    @Test func perUserLimitsAnswerWhichLimitAndHowToFreeRoom() async throws {
        try await BackendRouterTests.withFixture(userLimits: UserLimits(activeJobs: 2, submissionsPerMinute: 0, storageBytes: 0)) { fixture, client in
            let dana = try await client.account("dana")
            _ = try await BackendSessionTests.upload(client, token: dana)
            _ = try await BackendSessionTests.upload(client, token: dana)
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(dana)", .contentType: "application/zip"], body: BackendRouterTests.bundle(["demo/code.py": "1"])) { response in
                #expect(response.status == .tooManyRequests)
                #expect(String(buffer: response.body).contains("limits.active_jobs") && String(buffer: response.body).contains("cancel some"))
            }
            #expect(fixture.queue.messages.withLock { $0.count } == 2)
            // Another researcher is not held back by dana's jobs.
            let erin = try await client.account("erin")
            _ = try await BackendSessionTests.upload(client, token: erin)
        }
        try await BackendRouterTests.withFixture(userLimits: UserLimits(activeJobs: 0, submissionsPerMinute: 2, storageBytes: 0)) { _, client in
            let dana = try await client.account("dana")
            _ = try await BackendSessionTests.upload(client, token: dana)
            _ = try await BackendSessionTests.upload(client, token: dana)
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(dana)", .contentType: "application/zip"], body: BackendRouterTests.bundle(["demo/code.py": "1"])) { response in
                #expect(response.status == .tooManyRequests && String(buffer: response.body).contains("limits.upload_rate"))
            }
        }
        try await BackendRouterTests.withFixture(userLimits: UserLimits(activeJobs: 0, submissionsPerMinute: 0, storageBytes: 500)) { fixture, client in
            let dana = try await client.account("dana")
            let first = try await BackendSessionTests.upload(client, token: dana)
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(dana)", .contentType: "application/zip"], body: BackendRouterTests.bundle(["demo/code.py": String(repeating: "x", count: 450)])) { response in
                #expect(response.status == .contentTooLarge, "\(String(buffer: response.body))")
                #expect(String(buffer: response.body).contains("limits.storage") && String(buffer: response.body).contains("Delete jobs"))
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.file("bundles")).count == 1, "a refused upload was kept")
            // Deleting a finished job frees its room.
            try await fixture.store.advance(first.id, to: .succeeded, at: Date())
            try await client.execute(uri: "/api/v1/jobs/\(first.id)", method: .delete, headers: [.authorization: "Bearer \(dana)"]) { response in
                #expect(response.status == .noContent)
            }
            _ = try await BackendSessionTests.upload(client, token: dana)
        }
    }

    @Test func aFormOfManyFieldsOrTwoBundlesIsRefused() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let zip = Array(buffer: BackendRouterTests.bundle(["demo/code.py": "1"]))
            func form(fields: Int, bundles: Int) -> ByteBuffer {
                var body: [UInt8] = []
                for index in 0..<fields { body += Array("--b\r\nContent-Disposition: form-data; name=\"f\(index)\"\r\n\r\nx\r\n".utf8) }
                for _ in 0..<bundles { body += Array("--b\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"a.zip\"\r\n\r\n".utf8) + zip + Array("\r\n".utf8) }
                return ByteBuffer(bytes: body + Array("--b--\r\n".utf8))
            }
            let headers: HTTPFields = [.authorization: "Bearer \(dana)", .contentType: "multipart/form-data; boundary=b"]
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: headers, body: form(fields: 5000, bundles: 1)) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("upload.too_many_fields"))
            }
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: headers, body: form(fields: 0, bundles: 2)) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("upload.duplicate_bundle"))
            }
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: headers, body: form(fields: 2, bundles: 1)) { response in
                #expect(response.status == .created)
            }
        }
    }

    /// Logs, manifests and results are a job's bytes: never sniffed into HTML, never framed or run.
    @Test func userBytesAreServedInert() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let job = try await BackendSessionTests.upload(client, token: dana)
            let folder = fixture.directory.file("jobs/\(job.id)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data("<html><script>alert(document.cookie)</script>".utf8).write(to: URL(fileURLWithPath: folder + "/stdout.log"))
            try Data(#"{"x":"<script>"}"#.utf8).write(to: URL(fileURLWithPath: folder + "/manifest.json"))
            for path in ["/api/v1/jobs/\(job.id)/log?stream=stdout", "/api/v1/jobs/\(job.id)/log?stream=stdout&download=1", "/api/v1/jobs/\(job.id)/manifest", "/api/v1/jobs/\(job.id)"] {
                try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                    #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff", "\(path)")
                    #expect(response.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("sandbox") == true, "\(path)")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") != true, "\(path)")
                }
            }
        }
    }
}
