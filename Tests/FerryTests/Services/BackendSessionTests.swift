@testable import Backend
import FerryContracts
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

struct SessionAnswer: Decodable {
    var username: String
    var isAdmin: Bool
    var csrfToken: String?
}

/// Browser sessions, CSRF, the login slowdown, cancel/delete/re-run and the admin routes.
@Suite("Backend sessions, job actions and administration")
struct BackendSessionTests {
    typealias Fixture = BackendRouterTests.Fixture

    static func upload(_ client: some TestClientProtocol, token: String, project: String = "demo") async throws -> Job {
        try await client.execute(
            uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"],
            body: BackendRouterTests.bundle(["\(project)/code.py": "print(1)"])
        ) { response in
            #expect(response.status == .created)
            return try JSONDecoder.ferry().decode(Job.self, from: response.body)
        }
    }

    @Test func aSessionCookieWorksOnlyWithItsCSRFTokenForChanges() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            _ = try await client.account("alice")
            let credentials = ByteBuffer(string: #"{"username":"alice","password":"correct horse battery"}"#)
            let (cookie, session) = try await client.execute(uri: "/api/v1/auth/session", method: .post, headers: [.contentType: "application/json"], body: credentials) { response in
                #expect(response.status == .ok)
                let setCookie = try #require(response.headers[.setCookie])
                #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Lax") && setCookie.contains("Path=/"))
                let value = try #require(setCookie.split(separator: ";").first).split(separator: "=", maxSplits: 1)[1]
                return ("ferry_session=\(value)", try JSONDecoder.ferry().decode(SessionAnswer.self, from: response.body))
            }
            let csrf = try #require(session.csrfToken)
            #expect(session.username == "alice")
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .ok)
            }
            let zip = BackendRouterTests.bundle(["demo/code.py": ""])
            // A wrong token differs from the right one in its first digit.
            for sent in [nil, (csrf.first == "0" ? "1" : "0") + csrf.dropFirst()] {
                var headers: HTTPFields = [.cookie: cookie, .contentType: "application/zip"]
                if let sent { headers[Session.csrfHeader] = sent }
                try await client.execute(uri: "/api/v1/jobs", method: .post, headers: headers, body: zip) { response in
                    #expect(response.status == .forbidden)
                    #expect(String(buffer: response.body).contains("auth.csrf"))
                }
            }
            #expect(fixture.queue.messages.withLock { $0.isEmpty }, "a refused request created a job")
            try await client.execute(uri: "/api/v1/jobs", method: .post, headers: [.cookie: cookie, .contentType: "application/zip", Session.csrfHeader: csrf], body: zip) { response in
                #expect(response.status == .created)
            }
            // Logging out needs the token too, and ends the session.
            try await client.execute(uri: "/api/v1/auth/session", method: .delete, headers: [.cookie: cookie]) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/auth/session", method: .delete, headers: [.cookie: cookie, Session.csrfHeader: csrf]) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.cookie: cookie]) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }

    @Test func repeatedFailedLoginsAreSlowedDown() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            _ = try await client.account("bob")
            let wrong = ByteBuffer(string: #"{"username":"bob","password":"wrong password"}"#)
            for _ in 0..<3 {
                try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: wrong) { response in
                    #expect(response.status == .unauthorized)
                }
            }
            // Even the right password waits now.
            let right = ByteBuffer(string: #"{"username":"bob","password":"correct horse battery"}"#)
            try await client.execute(uri: "/api/v1/auth/session", method: .post, headers: [.contentType: "application/json"], body: right) { response in
                #expect(response.status == .tooManyRequests)
                #expect(String(buffer: response.body).contains("auth.too_many_attempts"))
            }
        }
    }

    @Test func cancelRerunAndDeleteActOnlyOnYourOwnJobs() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let alice = try await client.account("alice")
            let bob = try await client.account("bob")
            let job = try await Self.upload(client, token: alice)
            #expect(job.status == .queued)
            for (uri, method) in [("/api/v1/jobs/\(job.id)/cancel", HTTPRequest.Method.post), ("/api/v1/jobs/\(job.id)/rerun", .post), ("/api/v1/jobs/\(job.id)", .delete), ("/api/v1/jobs/\(job.id)/history", .get)] {
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(bob)"]) { response in
                    #expect(response.status == .notFound, "\(method) \(uri)")
                }
            }
            // A queued job is canceled at once, and the units are told (marker and control message).
            let canceled = try await client.execute(uri: "/api/v1/jobs/\(job.id)/cancel", method: .post, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .accepted)
                return try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(canceled.status == .canceled && canceled.reason == JobsController.canceledBeforeRunning)
            #expect(CancelMarker.isCanceled(jobID: job.id, dataDirectory: fixture.directory.path))
            #expect(fixture.control.requests.withLock { $0.map(\.jobID) } == [job.id])
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/cancel", method: .post, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("job.finished"))
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/history", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                let history = try JSONDecoder.ferry().decode(JobHistory.self, from: response.body).history
                #expect(history.map(\.status) == [.submitted, .queued, .canceled])
            }

            // Run again: a new queued job of the same project and limits, with its own bundle.
            let again = try await client.execute(uri: "/api/v1/jobs/\(job.id)/rerun", method: .post, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .created)
                return try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(again.id != job.id && again.project == job.project && again.timeLimit == job.timeLimit && again.status == .queued)
            #expect(fixture.queue.messages.withLock { $0.last?.jobID } == again.id)

            // Delete: only a finished job, and its files go.
            try await client.execute(uri: "/api/v1/jobs/\(again.id)", method: .delete, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("job.not_finished"))
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .delete, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .noContent)
            }
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.file("bundles/\(job.id).zip")))
            #expect(FileManager.default.fileExists(atPath: fixture.directory.file("bundles/\(again.id).zip")))
            try await client.execute(uri: "/api/v1/jobs/\(job.id)", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func theListFiltersByStatusAndProjectAndPages() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("carol")
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await Self.upload(client, token: token, project: index.isMultiple(of: 2) ? "even" : "odd").id) }
            try await fixture.store.advance(ids[4], to: .succeeded, at: Date())
            func page(_ query: String) async throws -> JobPage {
                try await client.execute(uri: "/api/v1/jobs?" + query, method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                    #expect(response.status == .ok, "\(query)")
                    return try JSONDecoder.ferry().decode(JobPage.self, from: response.body)
                }
            }
            #expect(try await page("project=even").jobs.map(\.id) == [ids[4], ids[2], ids[0]])
            #expect(try await page("status=succeeded").jobs.map(\.id) == [ids[4]])
            #expect(try await page("status=queued&project=even").jobs.map(\.id) == [ids[2], ids[0]])
            let first = try await page("limit=2")
            #expect(first.jobs.map(\.id) == [ids[4], ids[3]])
            let second = try await page("limit=2&cursor=\(try #require(first.next))")
            #expect(second.jobs.map(\.id) == [ids[2], ids[1]])
        }
    }

    @Test func administratorsSeeEverythingAndCanDisableAnAccount() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let admin = try await client.administrator("root-person", store: fixture.store)  // by the operator's setup token
            let mallory = try await client.account("mallory")
            _ = try await Self.upload(client, token: mallory)
            try await client.execute(uri: "/api/v1/admin/overview", method: .get, headers: [.authorization: "Bearer \(mallory)"]) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/admin/overview", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                let overview = try JSONDecoder.ferry().decode(AdminController.Overview.self, from: response.body)
                #expect(overview.queueDepth == 7 && overview.jobsByStatus["queued"] == 1)
            }
            try await client.execute(uri: "/api/v1/admin/jobs", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                let page = try JSONDecoder.ferry().decode(JobPage.self, from: response.body)
                #expect(page.jobs.map(\.owner) == ["mallory"])
            }
            let users = try await client.execute(uri: "/api/v1/admin/users", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                try JSONDecoder.ferry().decode(AdminController.Users.self, from: response.body).users
            }
            #expect(users.map(\.username) == ["root-person", "mallory"] && users.map(\.isAdmin) == [true, false])
            try await client.execute(uri: "/api/v1/admin/users/\(users[1].id)/disable", method: .post, headers: [.authorization: "Bearer \(admin)"]) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer \(mallory)"]) { response in
                #expect(response.status == .unauthorized)
            }
            let credentials = ByteBuffer(string: #"{"username":"mallory","password":"correct horse battery"}"#)
            try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: credentials) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("auth.disabled"))
            }
        }
    }

    @Test func tokensLimitsProjectsManifestsAndLogDownloads() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let login = try await client.account("dana")
            // A new token works like the login's; revoking removes every token of the user.
            struct Issued: Decodable { var token: String }
            let issued = try await client.execute(uri: "/api/v1/auth/tokens", method: .post, headers: [.authorization: "Bearer \(login)"]) { response in
                #expect(response.status == .created)
                return try JSONDecoder.ferry().decode(Issued.self, from: response.body).token
            }
            try await client.execute(uri: "/api/v1/limits", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                let limits = try JSONDecoder.ferry().decode(ServerLimits.self, from: response.body)
                #expect(limits.maxUploadBytes == 1 << 30 && limits.maxTimeLimit == 86_400)
            }
            let job = try await Self.upload(client, token: issued, project: "tidy")
            try await client.execute(uri: "/api/v1/projects", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                let list = try JSONDecoder.ferry().decode(ProjectList.self, from: response.body)
                #expect(list.projects == ["tidy"])
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/manifest", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("job.no_manifest"))
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/result", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(response.status == .conflict)
            }
            // What a unit leaves behind: a manifest and the logs.
            let folder = fixture.directory.file("jobs/\(job.id)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(#"{"python":"3.11.2"}"#.utf8).write(to: URL(fileURLWithPath: folder + "/manifest.json"))
            try Data("line 1\nline 2\n".utf8).write(to: URL(fileURLWithPath: folder + "/stdout.log"))
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/manifest", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("3.11.2"))
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/log?stream=stdout&offset=7", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(String(buffer: response.body) == "line 2\n" && response.headers[HTTPField.Name("X-Log-Size")!] == "14")
            }
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/log?stream=stdout&download=1", method: .get, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(String(buffer: response.body) == "line 1\nline 2\n")
                #expect(response.headers[.contentDisposition] == "attachment; filename=\"tidy-stdout.log\"")
            }
            try await client.execute(uri: "/api/v1/auth/tokens", method: .delete, headers: [.authorization: "Bearer \(issued)"]) { response in
                #expect(response.status == .noContent)
            }
            for token in [login, issued] {
                try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                    #expect(response.status == .unauthorized)
                }
            }
        }
    }
}
