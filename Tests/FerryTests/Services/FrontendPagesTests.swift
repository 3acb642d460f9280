@testable import Backend
import FerryContracts
import FerryHTTPClient
import FerryTestSupport
import Foundation
@testable import Frontend
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The pages through a live Frontend in front of a live Backend (real SQLite; the queue and broker
/// are the router tests' recorders), driven like a browser that does not follow redirects.
@Suite("Frontend pages with sessions")
struct FrontendPagesTests {
    /// A browser's cookie jar, reduced to what Ferry sets.
    final class Browser: @unchecked Sendable {
        let client: HTTPClient
        let base: String
        var cookies: [String: String] = [:]

        init(client: HTTPClient, base: String) {
            self.client = client
            self.base = base
        }

        @discardableResult
        func go(_ path: String, method: String = "GET", form: [String: String]? = nil, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil) async throws -> FerryHTTPClient.HTTPResponse {
            var all = headers
            if !cookies.isEmpty { all.append(("Cookie", cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "))) }
            var requestBody = FerryHTTPClient.HTTPRequest.Body.none
            if let form {
                all.append(("Content-Type", "application/x-www-form-urlencoded"))
                let encoded = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
                requestBody = .bytes(Array(encoded.utf8))
            } else if let body {
                requestBody = .bytes(body)
            }
            let response = try await client.execute(.init(method: method, url: base + path, headers: all, body: requestBody))
            if let setCookie = response.headers["set-cookie"], let pair = setCookie.split(separator: ";").first {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2, !parts[1].isEmpty, !setCookie.contains("Max-Age=0") { cookies[parts[0]] = parts[1] } else { cookies[parts[0]] = nil }
            }
            return response
        }

        /// The value of the hidden `csrf` field (or the CSRF meta tag) of the page at `path`.
        func token(on path: String) async throws -> String {
            let html = String(decoding: try await go(path).body, as: UTF8.self)
            let match = try #require(html.firstMatch(of: #/name="csrf(?:-token)?" (?:value|content)="([0-9a-f]{64})"/#))
            return String(match.1)
        }
    }

    static func withStack(_ body: @escaping @Sendable (Browser, BackendRouterTests.Fixture) async throws -> Void) async throws {
        let fixture = try await BackendRouterTests.fixture()
        let client = HTTPClient(configuration: .init(defaultTimeout: .seconds(30)))
        let router = BackendRouterTests.router(store: fixture.store, queue: fixture.queue, control: fixture.control, settings: JobSettings(dataDirectory: fixture.directory.path))
        let backendApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        do {
            try await backendApp.test(.live) { backend in
                let backendURL = "http://127.0.0.1:\(try #require(backend.port))"
                let proxy = BackendProxy(backendURL: backendURL, client: client, logger: Logger(label: "test"))
                let pages = try await Pages.load(backendURL: backendURL, client: client, logger: Logger(label: "test"))
                let frontend = Application(router: buildFrontendRouter(proxy: proxy, pages: pages), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await frontend.test(.live) { browser in
                    try await body(Browser(client: client, base: "http://127.0.0.1:\(try #require(browser.port))"), fixture)
                }
            }
        } catch {
            try await fixture.store.close()
            try await client.shutdown()
            throw error
        }
        try await fixture.store.close()
        try await client.shutdown()
    }

    static func register(_ browser: Browser, _ name: String) async throws {
        let token = try await browser.token(on: "/register")
        let answer = try await browser.go("/register", method: "POST", form: ["csrf": token, "username": name, "password": "correct horse battery"])
        #expect(answer.status == 303 && answer.headers["location"] == "/upload?welcome=1")
    }

    @Test func withoutASessionEveryPageSendsYouToLogIn() async throws {
        try await Self.withStack { browser, _ in
            for path in ["/upload", "/results", "/settings", "/admin", "/jobs/\(UUID().uuidString.lowercased())"] {
                let response = try await browser.go(path)
                #expect(response.status == 303, "\(path)")
                #expect(response.headers["location"]?.hasPrefix("/login?next=") == true, "\(path)")
            }
            let home = try await browser.go("/")
            #expect(home.status == 200 && String(decoding: home.body, as: UTF8.self).contains("Create an account"))
        }
    }

    @Test func formsWithoutTheirCSRFTokenAreRefused() async throws {
        try await Self.withStack { browser, fixture in
            _ = try await browser.token(on: "/register")  // the browser has the form cookie, the attacker's form lacks the field
            let forged = try await browser.go("/register", method: "POST", form: ["username": "victim", "password": "correct horse battery"])
            #expect(forged.status == 403)
            #expect(String(decoding: forged.body, as: UTF8.self).contains("This form expired"))
            #expect(try await fixture.store.credentials(username: "victim") == nil)

            try await Self.register(browser, "alice")
            let forgedLogout = try await browser.go("/logout", method: "POST", form: ["csrf": String(repeating: "0", count: 64)])
            #expect(forgedLogout.status == 403)
            #expect(try await browser.go("/results").status == 200, "a forged logout ended the session")
        }
    }

    @Test func registerLogOutAndLogInThroughTheForms() async throws {
        try await Self.withStack { browser, _ in
            try await Self.register(browser, "alice")
            let session = try #require(browser.cookies["ferry_session"])
            let upload = try await browser.go("/upload")
            let html = String(decoding: upload.body, as: UTF8.self)
            #expect(upload.status == 200 && html.contains("name=\"bundle\"") && html.contains("alice"))
            #expect(upload.headers["content-security-policy"]?.contains("default-src 'self'") == true)

            // The page's CSRF token lets its scripts change things with the cookie.
            let csrf = try await browser.token(on: "/upload")
            var zip = RawZipBuilder()
            zip.file("demo/code.py", "print(1)")
            let created = try await browser.go("/api/v1/jobs", method: "POST", headers: [("Content-Type", "application/zip"), ("X-CSRF-Token", csrf)], body: zip.bytes())
            #expect(created.status == 201)

            let out = try await browser.go("/logout", method: "POST", form: ["csrf": csrf])
            #expect(out.status == 303 && out.headers["location"] == "/login?loggedOut=1")
            #expect(browser.cookies["ferry_session"] == nil)
            browser.cookies["ferry_session"] = session  // an old cookie is worthless after logging out
            #expect(try await browser.go("/results").status == 303)
            browser.cookies["ferry_session"] = nil

            let wrong = try await browser.go("/login", method: "POST", form: ["csrf": try await browser.token(on: "/login"), "username": "alice", "password": "not it at all"])
            #expect(wrong.status == 401)
            #expect(String(decoding: wrong.body, as: UTF8.self).contains("The user name or password is wrong."))
            let back = try await browser.go("/login", method: "POST", form: ["csrf": try await browser.token(on: "/login"), "username": "alice", "password": "correct horse battery", "next": "/settings"])
            #expect(back.status == 303 && back.headers["location"] == "/settings")
            #expect(try await browser.go("/settings").status == 200)
            // `next` never leads off the site.
            browser.cookies["ferry_session"] = nil
            let offsite = try await browser.go("/login", method: "POST", form: ["csrf": try await browser.token(on: "/login"), "username": "alice", "password": "correct horse battery", "next": "//evil.example/"])
            #expect(offsite.status == 303 && offsite.headers["location"] == "/results")
        }
    }

    @Test func anotherUsersJobPageIsMissingAndTheAdminPageIsForAdministrators() async throws {
        try await Self.withStack { browser, fixture in
            try await Self.register(browser, "admin-person")  // the first account administers
            #expect(try await browser.go("/admin").status == 200)
            let csrf = try await browser.token(on: "/upload")
            var zip = RawZipBuilder()
            zip.file("secret/code.py", "print(1)")
            let created = try await browser.go("/api/v1/jobs", method: "POST", headers: [("Content-Type", "application/zip"), ("X-CSRF-Token", csrf)], body: zip.bytes())
            let job = try created.decode(Job.self)
            let own = try await browser.go("/jobs/\(job.id)")
            #expect(own.status == 200 && String(decoding: own.body, as: UTF8.self).contains("secret"))

            _ = try await browser.go("/logout", method: "POST", form: ["csrf": csrf])
            try await Self.register(browser, "bob")
            let other = try await browser.go("/jobs/\(job.id)")
            #expect(other.status == 404)
            #expect(!String(decoding: other.body, as: UTF8.self).contains("secret"))
            #expect(try await browser.go("/admin").status == 403)
        }
    }
}
