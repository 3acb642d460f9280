@testable import Backend
import FerryContracts
import FerryService
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

    static func withStack(
        auth: AuthSettings = BackendRouterTests.testAuth, timeouts: ProxyTimeouts = ProxyTimeouts(),
        _ body: @escaping @Sendable (Browser, BackendRouterTests.Fixture) async throws -> Void
    ) async throws {
        let fixture = try await BackendRouterTests.fixture()
        let client = HTTPClient(configuration: .init(defaultTimeout: .seconds(30)))
        // As buildFrontend wires them: the pages, the API calls and the uploads each with threads of their own.
        let api = HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: nil))
        let uploads = HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: nil))
        let pagesClient = HTTPClient(configuration: .init(maxConcurrentRequests: 16, defaultTimeout: .seconds(30)))
        let router = BackendRouterTests.router(store: fixture.store, queue: fixture.queue, control: fixture.control, settings: JobSettings(dataDirectory: fixture.directory.path), auth: auth)
        let backendApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        do {
            try await backendApp.test(.live) { backend in
                let backendURL = "http://127.0.0.1:\(try #require(backend.port))"
                let proxy = BackendProxy(backendURL: backendURL, client: api, uploads: uploads, timeouts: timeouts, logger: Logger(label: "test"))
                let pages = try await Pages.load(backendURL: backendURL, client: pagesClient, logger: Logger(label: "test"))
                let frontend = Application(router: buildFrontendRouter(proxy: proxy, pages: pages), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await frontend.test(.live) { browser in
                    try await body(Browser(client: client, base: "http://127.0.0.1:\(try #require(browser.port))"), fixture)
                }
            }
        } catch {
            try await fixture.store.close()
            try await client.shutdown()
            for other in [api, uploads, pagesClient] { try? await other.shutdown() }
            throw error
        }
        try await fixture.store.close()
        try await client.shutdown()
        for other in [api, uploads, pagesClient] { try await other.shutdown() }
    }

    static func register(_ browser: Browser, _ name: String) async throws {
        let token = try await browser.token(on: "/register")
        let answer = try await browser.go("/register", method: "POST", form: ["csrf": token, "username": name, "password": "correct horse battery"])
        #expect(answer.status == 303 && answer.headers["location"] == "/upload?welcome=1")
    }

    /// Makes `name` the first administrator through the setup page, with a token the operator has.
    static func setUp(_ browser: Browser, _ name: String, store: JobStore) async throws {
        let token = Tokens.generate()
        try await store.storeSetupToken(hash: Tokens.hash(token))
        let page = String(decoding: try await browser.go("/setup?token=\(token)").body, as: UTF8.self)
        #expect(page.contains(token), "the setup page does not carry the link's token")
        let form = try await browser.token(on: "/setup")
        let answer = try await browser.go("/setup", method: "POST", form: ["csrf": form, "token": token, "username": name, "password": "correct horse battery"])
        #expect(answer.status == 303 && answer.headers["location"] == "/admin", "\(String(decoding: answer.body, as: UTF8.self))")
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
            try await Self.setUp(browser, "admin-person", store: fixture.store)
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

    /// Being first to register makes nobody an administrator: only the operator's one-time token does.
    @Test func theFirstAdministratorComesFromTheOperatorsSetupTokenNotFromRegisteringFirst() async throws {
        try await Self.withStack { browser, fixture in
            try await Self.register(browser, "early-bird")
            #expect(try await browser.go("/admin").status == 403, "the first account to register became an administrator")
            _ = try await browser.go("/logout", method: "POST", form: ["csrf": try await browser.token(on: "/upload")])

            let token = Tokens.generate()
            try await fixture.store.storeSetupToken(hash: Tokens.hash(token))
            let form = try await browser.token(on: "/setup")
            let wrong = try await browser.go("/setup", method: "POST", form: ["csrf": form, "token": Tokens.generate(), "username": "intruder", "password": "correct horse battery"])
            #expect(wrong.status == 403 && String(decoding: wrong.body, as: UTF8.self).contains("setup token is not valid"))
            #expect(try await fixture.store.credentials(username: "intruder") == nil)
            let right = try await browser.go("/setup", method: "POST", form: ["csrf": form, "token": token, "username": "operator", "password": "correct horse battery"])
            #expect(right.status == 303)
            #expect(try await browser.go("/admin").status == 200)
            // The token works once.
            browser.cookies["ferry_session"] = nil
            let page = String(decoding: try await browser.go("/setup").body, as: UTF8.self)
            #expect(page.contains("has an administrator already"))
            let again = try await browser.go("/setup", method: "POST", form: ["csrf": form, "token": token, "username": "second", "password": "correct horse battery"])
            #expect(again.status == 403)
            #expect(try await fixture.store.credentials(username: "second") == nil)
        }
    }

    /// After logging in, `next` stays on the site however it is written.
    @Test(arguments: [
        "/%09/evil.example", "/\t/evil.example", "//evil.example/", "/\\evil.example", "/%5Cevil.example", "/%2F/evil.example",
        "https://evil.example/", "/%0d%0aSet-Cookie:x=1", "/%252F%252Fevil.example", "javascript:alert(1)",
    ])
    func nextNeverLeadsOffTheSite(next: String) async throws {
        #expect(Pages.safeNext(next) == "/results", "\(next) was followed")
        #expect(Pages.safeNext(next.removingPercentEncoding) == "/results", "\(next) decoded was followed")
    }

    @Test func nextStillLeadsToPagesOfTheSite() {
        #expect(Pages.safeNext("/jobs/abc?tab=logs") == "/jobs/abc?tab=logs")
        #expect(Pages.safeNext("/settings") == "/settings")
    }

    /// A cross-site form or script cannot log a victim in (into the attacker's account) or act with
    /// the victim's session: JSON routes take only JSON, and a browser's word on where a request comes
    /// from is checked on every change a cookie could authenticate.
    @Test func crossSiteRequestsAreRefusedBeforeAnythingHappens() async throws {
        try await Self.withStack { browser, fixture in
            try await Self.register(browser, "victim")
            let csrf = try await browser.token(on: "/upload")
            let attacker = #"{"username":"victim","password":"correct horse battery"}"#
            browser.cookies["ferry_session"] = nil
            // A cross-site form can send text/plain that happens to be JSON.
            let plain = try await browser.go("/api/v1/auth/session", method: "POST", headers: [("Content-Type", "text/plain")], body: Array(attacker.utf8))
            #expect(plain.status == 415 && plain.headers["set-cookie"] == nil)
            for headers in [[("Origin", "http://evil.example")], [("Sec-Fetch-Site", "cross-site")], [("Origin", "null")]] as [[(name: String, value: String)]] {
                let login = try await browser.go("/api/v1/auth/session", method: "POST", headers: headers + [("Content-Type", "application/json")], body: Array(attacker.utf8))
                #expect(login.status == 403 && login.headers["set-cookie"] == nil, "\(headers)")
                #expect(String(decoding: login.body, as: UTF8.self).contains("auth.cross_site"))
                let register = try await browser.go("/api/v1/auth/register", method: "POST", headers: headers + [("Content-Type", "application/json")], body: Array(#"{"username":"planted","password":"correct horse battery"}"#.utf8))
                #expect(register.status == 403)
            }
            #expect(try await fixture.store.credentials(username: "planted") == nil)
            // The same request from Ferry's own page goes through.
            let origin = browser.base
            let own = try await browser.go("/api/v1/auth/session", method: "POST", headers: [("Origin", origin), ("Sec-Fetch-Site", "same-origin"), ("Content-Type", "application/json")], body: Array(attacker.utf8))
            #expect(own.status == 200)
            // With the victim's session, a change from another site is refused even with the CSRF token.
            _ = csrf
            let fresh = try await browser.token(on: "/upload")
            var zip = RawZipBuilder()
            zip.file("demo/code.py", "print(1)")
            let upload = try await browser.go("/api/v1/jobs", method: "POST", headers: [("Content-Type", "application/zip"), ("X-CSRF-Token", fresh), ("Origin", "https://evil.example")], body: zip.bytes())
            #expect(upload.status == 403)
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
            // The Frontend's own forms check the same.
            browser.cookies["ferry_session"] = nil
            let form = try await browser.token(on: "/login")
            let forged = try await browser.go("/login", method: "POST", form: ["csrf": form, "username": "victim", "password": "correct horse battery"], headers: [("Origin", "http://evil.example")])
            #expect(forged.status == 403 && forged.headers["set-cookie"] == nil)
        }
    }

    /// Guessing across many accounts from one address is slowed down as guessing one account is;
    /// another client behind the same proxy is not.
    @Test func failedLoginsAreThrottledByAddressAsWellAsByAccount() async throws {
        var auth = BackendRouterTests.testAuth
        auth.accountThrottle = LoginThrottle(freeAttempts: 100)
        auth.addressThrottle = LoginThrottle(freeAttempts: 4, firstDelay: 60)
        try await Self.withStack(auth: auth) { browser, _ in
            try await Self.register(browser, "target")
            browser.cookies["ferry_session"] = nil
            func login(_ name: String, _ password: String, from address: String? = nil) async throws -> Int {
                let body = Array(#"{"username":"\#(name)","password":"\#(password)"}"#.utf8)
                let headers = [("Content-Type", "application/json")] + (address.map { [("X-Forwarded-For", $0)] } ?? [])
                return try await browser.go("/api/v1/auth/login", method: "POST", headers: headers, body: body).status
            }
            for name in ["anna", "bert", "cleo", "dirk"] { #expect(try await login(name, "guess one") == 401) }
            #expect(try await login("target", "correct horse battery") == 429, "an address that guessed four accounts was not slowed down")
            #expect(try await login("target", "correct horse battery", from: "10.9.8.7") == 200, "another client behind the proxy was held back")
        }
    }

    /// `/api/../metrics` on the public port named the Backend's metrics; dot segments are refused.
    @Test func theProxyRefusesDotSegments() async throws {
        try await Self.withStack { browser, _ in
            let port = try #require(URLComponents(string: browser.base)?.port)
            for path in ["/api/../metrics", "/api/%2e%2e/metrics", "/api/v1/%2E%2E/%2E%2E/health", "/api/v1/jobs%2F..%2F..%2Fmetrics", "/api/./v1/limits"] {
                let answer = try await RawHTTP.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", port: port)
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(path): \(answer.prefix(200))")
                #expect(!answer.contains("http_server_request"), "\(path) reached the Backend's metrics")
            }
        }
    }

    /// Slow clients cannot pin the Frontend: while 100 uploads hang, pages and the API still answer,
    /// and each hanging upload is cut off after the idle timeout.
    @Test func theFrontendStaysResponsiveWhileAHundredUploadsHang() async throws {
        try await Self.withStack(timeouts: ProxyTimeouts(idle: .seconds(3), total: .seconds(600))) { browser, _ in
            try await Self.register(browser, "patient")
            let port = try #require(URLComponents(string: browser.base)?.port)
            let cookie = try #require(browser.cookies["ferry_session"])
            let csrf = try await browser.token(on: "/upload")
            let hanging = try (0..<100).map { _ in
                try RawHTTP.open(
                    "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ferry_session=\(cookie)\r\nX-CSRF-Token: \(csrf)\r\nContent-Type: application/zip\r\nContent-Length: 10485760\r\n\r\nPK\u{3}\u{4}", port: port
                )
            }
            defer { hanging.forEach { close($0) } }
            try await Task.sleep(for: .milliseconds(500))
            let checker = HTTPClient(configuration: .init(connectTimeout: .seconds(2), defaultTimeout: .seconds(10)))
            defer { Task { try? await checker.shutdown() } }
            let pageHeaders = [("Cookie", "ferry_session=\(cookie)")]
            for path in ["/upload", "/results", "/api/v1/limits", "/health", "/"] {
                let answer = try await checker.execute(.init(url: browser.base + path, headers: pageHeaders, timeout: .seconds(10)))
                #expect([200, 503].contains(answer.status), "\(path) answered \(answer.status) while uploads hang")
            }
            // Each hanging upload gets its answer (408) or is closed once it was idle for 3 s.
            var cutOff = 0
            for socket in hanging where await RawHTTP.waitForAnswerOrClose(socket, seconds: 20) { cutOff += 1 }
            #expect(cutOff == 100, "only \(cutOff) of 100 hanging uploads were cut off")
        }
    }
}

/// Raw HTTP over a socket, for what an HTTP client library will not send (dot segments, stalls).
enum RawHTTP {
    static func open(_ request: String, port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot connect to 127.0.0.1:\(port)"])
        }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        return descriptor
    }

    /// Sends `request` and returns everything the server answered until it closed (at most 10 s).
    /// The blocking reads run on a thread of their own: on the cooperative pool (two threads here)
    /// they would hold up the server under test, which answers on that pool.
    static func send(_ request: String, port: Int) async throws -> String {
        try await onOwnThread { try sendBlocking(request, port: port) }
    }

    private static func sendBlocking(_ request: String, port: Int) throws -> String {
        let descriptor = try open(request, port: port)
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// Whether the server answered or closed the connection within `seconds`.
    static func waitForAnswerOrClose(_ descriptor: Int32, seconds: Int) async -> Bool {
        (try? await onOwnThread {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return poll(&poller, 1, Int32(seconds * 1000)) == 1
        }) ?? false
    }

}
