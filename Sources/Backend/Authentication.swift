import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import NIOPosix

enum APIErrorFactory {
    static let unauthorized = APIError(
        .unauthorized, code: "auth.required",
        message: "Log in first: in a browser at /login, from a script with `Authorization: Bearer <token>` (a token from /settings or POST /api/v1/auth/login)."
    )
    static let csrf = APIError(
        .forbidden, code: "auth.csrf",
        message: "This request came without the page's CSRF token, so it was refused. Reload the page and try again (scripts: use a bearer token instead of the browser's cookie)."
    )
    static let forbidden = APIError(.forbidden, code: "auth.admin_only", message: "Only Ferry's administrators may do this.")
}

/// Names and lifetimes of what a browser session keeps.
enum Session {
    /// The HttpOnly cookie with the session's random id; only its SHA-256 is stored.
    static let cookie = "ferry_session"
    /// The header a page sends its session's CSRF token in with every request that changes something.
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let lifetime: TimeInterval = 7 * 24 * 3600
    static let tokenLifetime: TimeInterval = 90 * 24 * 3600

    /// `Secure` when the browser reached Ferry over HTTPS (a TLS proxy in front sets X-Forwarded-Proto).
    static func cookie(value: String, maxAge: Int, request: Request) -> Cookie {
        let secure = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https"
        return Cookie(name: cookie, value: value, maxAge: maxAge, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }
}

/// Finds the caller: `Authorization: Bearer <token>` for scripts, the `ferry_session` cookie for
/// browsers. A request that changes something with a session cookie must carry the session's CSRF
/// token in `X-CSRF-Token`, so another site cannot make a logged-in browser act (bearer tokens are
/// never sent by a browser on its own and need none).
struct Authenticator: RouterMiddleware {
    typealias Context = BackendContext
    let store: JobStore
    /// User names from `auth.admins`, lowercased: administrators besides the first account.
    let admins: Set<String>

    static let safeMethods: Set<HTTPRequest.Method> = [.get, .head, .options]

    func handle(_ request: Request, context: BackendContext, next: (Request, BackendContext) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
            context.user = try await store.user(forTokenHash: Tokens.hash(token))
        } else if let cookie = request.cookies[Session.cookie]?.value, !cookie.isEmpty,
                  let session = try await store.session(hash: Tokens.hash(cookie)) {
            context.user = session.user
            context.session = .init(hash: Tokens.hash(cookie), csrf: session.csrf)
            if !Self.safeMethods.contains(request.method) {
                guard let sent = request.headers[Session.csrfHeader], Tokens.equal(sent, session.csrf) else { throw APIErrorFactory.csrf }
            }
        }
        context.user = context.user.map { $0.with(admins: admins) }
        return try await next(request, context)
    }
}

extension User {
    /// The user, an administrator also when named in `auth.admins`.
    func with(admins: Set<String>) -> User {
        var user = self
        user.isAdmin = isAdmin || admins.contains(username.lowercased())
        return user
    }
}

/// Slows down guessing: after `freeAttempts` failed logins for one user name within `window`, each further attempt must wait twice as long as the one before, up to `maxDelay`.
/// Kept in memory: a restart forgives, which costs a guesser a restart of someone else's server.
actor LoginThrottle {
    private struct Record {
        var failures = 0
        var last = Date.distantPast
        var blockedUntil = Date.distantPast
    }

    let freeAttempts: Int
    let window: TimeInterval
    let maxDelay: TimeInterval
    private var records: [String: Record] = [:]

    init(freeAttempts: Int = 5, window: TimeInterval = 15 * 60, maxDelay: TimeInterval = 300) {
        self.freeAttempts = freeAttempts
        self.window = window
        self.maxDelay = maxDelay
    }

    /// Seconds to wait before another attempt for any of `keys`, or nil when one may be made now.
    func delay(for keys: [String], now: Date = Date()) -> Int? {
        let until = keys.compactMap { records[$0]?.blockedUntil }.max() ?? .distantPast
        return until > now ? Int(until.timeIntervalSince(now).rounded(.up)) : nil
    }

    func failed(_ keys: [String], now: Date = Date()) {
        if records.count > 100_000 { records = records.filter { now.timeIntervalSince($0.value.last) < window } }
        for key in keys {
            var record = records[key] ?? Record()
            if now.timeIntervalSince(record.last) > window { record = Record() }
            record.failures += 1
            record.last = now
            if record.failures >= freeAttempts {
                record.blockedUntil = now.addingTimeInterval(min(pow(2, Double(record.failures - freeAttempts)), maxDelay))
            }
            records[key] = record
        }
    }

    func succeeded(_ key: String) {
        records[key] = nil
    }
}

/// Registration, logging in and out: API tokens for scripts, cookie sessions for browsers.
struct AuthController {
    let store: JobStore
    let bcryptCost: UInt8
    let throttle: LoginThrottle
    let admins: Set<String>

    struct Credentials: Decodable {
        var username: String
        var password: String
    }

    struct Registered: ResponseEncodable {
        var id: String
        var username: String
    }

    struct IssuedToken: ResponseEncodable {
        var token: String
        var expiresAt: Date
    }

    /// The browser's session: who is logged in and the token its pages send with every change.
    struct SessionInfo: ResponseEncodable {
        var username: String
        var isAdmin: Bool
        var csrfToken: String?
    }

    func register(to router: some RouterMethods<BackendContext>) {
        router.post("/api/v1/auth/register") { request, context -> EditedResponse<Registered> in
            let credentials = try await request.decode(as: Credentials.self, context: context)
            let username = credentials.username.trimmingCharacters(in: .whitespaces)
            guard username.wholeMatch(of: #/[A-Za-z0-9._-]{3,64}/#) != nil else {
                throw APIError(.unprocessableContent, code: "auth.invalid_username", message: "Choose a user name of 3 to 64 letters, digits, dots, dashes or underscores.")
            }
            guard credentials.password.count >= 8, credentials.password.utf8.count <= 72 else {
                throw APIError(.unprocessableContent, code: "auth.weak_password", message: "Choose a password of 8 to 72 characters.")
            }
            let cost = bcryptCost
            let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(credentials.password, cost: cost) }
            guard let user = try await store.createUser(username: username, passwordHash: hash) else {
                throw APIError(.conflict, code: "auth.username_taken", message: "The user name \(username) is taken; choose another.")
            }
            return EditedResponse(status: .created, response: Registered(id: user.id, username: user.username))
        }
        /// A bearer token for scripts.
        router.post("/api/v1/auth/login") { request, context -> IssuedToken in
            let user = try await verify(try await request.decode(as: Credentials.self, context: context))
            return try await issueToken(for: user)
        }
        /// A cookie session for browsers.
        router.post("/api/v1/auth/session") { request, context -> Response in
            let user = try await verify(try await request.decode(as: Credentials.self, context: context))
            let secret = Tokens.generate(), csrf = Tokens.generate()
            try await store.createSession(hash: Tokens.hash(secret), user: user, csrf: csrf, expiresAt: Date().addingTimeInterval(Session.lifetime))
            var response = try context.responseEncoder.encode(SessionInfo(username: user.username, isAdmin: user.isAdmin, csrfToken: csrf), from: request, context: context)
            response.setCookie(Session.cookie(value: secret, maxAge: Int(Session.lifetime), request: request))
            return response
        }
        router.get("/api/v1/auth/session") { _, context -> SessionInfo in
            let user = try context.requireUser()
            return SessionInfo(username: user.username, isAdmin: user.isAdmin, csrfToken: context.session?.csrf)
        }
        router.delete("/api/v1/auth/session") { request, context -> Response in
            if let session = context.session { try await store.deleteSession(hash: session.hash) }
            var response = Response(status: .noContent)
            response.setCookie(Session.cookie(value: "", maxAge: 0, request: request))
            return response
        }
        /// A new API token for the logged-in user (the settings page), and revoking all of them.
        router.post("/api/v1/auth/tokens") { _, context -> EditedResponse<IssuedToken> in
            EditedResponse(status: .created, response: try await issueToken(for: try context.requireUser()))
        }
        router.delete("/api/v1/auth/tokens") { _, context -> HTTPResponse.Status in
            try await store.deleteTokens(of: try context.requireUser())
            return .noContent
        }
    }

    private func issueToken(for user: User) async throws -> IssuedToken {
        let token = Tokens.generate()
        let expiresAt = Date().addingTimeInterval(Session.tokenLifetime)
        try await store.storeToken(hash: Tokens.hash(token), user: user, expiresAt: expiresAt)
        return IssuedToken(token: token, expiresAt: expiresAt)
    }

    /// Checks a user name and password, slowed down after repeated failures.
    private func verify(_ credentials: Credentials) async throws -> User {
        let username = credentials.username.trimmingCharacters(in: .whitespaces)
        // Keyed by account, not by address: a lab behind one NAT address must not lock itself out.
        let keys = [username.lowercased()]
        if let wait = await throttle.delay(for: keys) {
            throw APIError(
                .tooManyRequests, code: "auth.too_many_attempts",
                message: "Too many failed logins for this account; wait \(wait) seconds and try again.", details: ["retryAfter": "\(wait)"]
            )
        }
        let found = try await store.credentials(username: username)
        // Verify against a dummy hash for unknown users too, so timing does not reveal which names exist.
        let hash = found?.passwordHash ?? "$2b$10$abcdefghijklmnopqrstuu5Ddo5nQ4z5JU0rJ2kZP2M5ES5Zk6Sy"
        let valid = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(String(credentials.password.prefix(256)), hash: hash) }
        guard valid, let user = found?.0 else {
            await throttle.failed(keys)
            throw APIError(.unauthorized, code: "auth.invalid_credentials", message: "The user name or password is wrong.")
        }
        await throttle.succeeded(keys[0])
        guard !user.isDisabled else {
            throw APIError(.forbidden, code: "auth.disabled", message: "This account is disabled; ask your Ferry administrator.")
        }
        return user.with(admins: admins)
    }
}
