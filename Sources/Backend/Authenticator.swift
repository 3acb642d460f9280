import FerryService
import Foundation
import HTTPTypes
import Hummingbird

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
/// never sent by a browser on its own and need none); `CrossSiteGuard` runs before it.
struct Authenticator: RouterMiddleware {
    typealias Context = BackendContext
    let store: JobStore
    /// Account ids from `auth.admins`: administrators besides those the database names.
    let adminIDs: Set<String>
    let trustedProxies: TrustedProxies

    static let safeMethods: Set<HTTPRequest.Method> = [.get, .head, .options]

    func handle(_ request: Request, context: BackendContext, next: (Request, BackendContext) async throws -> Response) async throws -> Response {
        var context = context
        context.clientAddress = trustedProxies.client(of: request, peer: context.peerAddress)
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
        context.user = context.user.map { $0.with(adminIDs: adminIDs) }
        return try await next(request, context)
    }
}

extension User {
    /// The user, an administrator also when its id is in `auth.admins`.
    func with(adminIDs: Set<String>) -> User {
        var user = self
        user.isAdmin = isAdmin || adminIDs.contains(id)
        return user
    }
}
