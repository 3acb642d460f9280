import Crypto
import FerryService
import Foundation
import Hummingbird
import HummingbirdBcrypt
import NIOPosix

enum APIErrorFactory {
    static let unauthorized = APIError(
        .unauthorized, code: "auth.required",
        message: "Log in first: send `Authorization: Bearer <token>` with the token from POST /api/v1/auth/login."
    )
}

/// Resolves `Authorization: Bearer <token>` to a user. Tokens are random; only their SHA-256 is stored.
struct BearerAuthenticator: RouterMiddleware {
    typealias Context = BackendContext
    let store: JobStore

    func handle(_ request: Request, context: BackendContext, next: (Request, BackendContext) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
            context.user = try await store.user(forTokenHash: Tokens.hash(token))
        }
        return try await next(request, context)
    }
}

enum Tokens {
    /// 32 random bytes, hex.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// `POST /api/v1/auth/register` and `/login`.
struct AuthController {
    let store: JobStore
    let bcryptCost: UInt8
    let tokenLifetime: TimeInterval = 30 * 24 * 3600

    struct Credentials: Decodable {
        var username: String
        var password: String
    }

    struct Registered: ResponseEncodable {
        var id: String
        var username: String
    }

    struct LoggedIn: ResponseEncodable {
        var token: String
        var expiresAt: Date
    }

    func register(to router: some RouterMethods<BackendContext>) {
        router.post("/api/v1/auth/register") { request, context -> EditedResponse<Registered> in
            let credentials = try await request.decode(as: Credentials.self, context: context)
            let username = credentials.username.trimmingCharacters(in: .whitespaces)
            guard username.wholeMatch(of: #/[A-Za-z0-9._-]{3,64}/#) != nil else {
                throw APIError(.unprocessableContent, code: "auth.invalid_username", message: "Choose a user name of 3 to 64 letters, digits, dots, dashes or underscores.")
            }
            guard credentials.password.count >= 8, credentials.password.count <= 256 else {
                throw APIError(.unprocessableContent, code: "auth.weak_password", message: "Choose a password of at least 8 characters.")
            }
            let cost = bcryptCost
            let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(credentials.password, cost: cost) }
            guard let user = try await store.createUser(username: username, passwordHash: hash) else {
                throw APIError(.conflict, code: "auth.username_taken", message: "The user name \(username) is taken; choose another.")
            }
            return EditedResponse(status: .created, response: Registered(id: user.id, username: user.username))
        }
        router.post("/api/v1/auth/login") { request, context -> LoggedIn in
            let credentials = try await request.decode(as: Credentials.self, context: context)
            let found = try await store.credentials(username: credentials.username.trimmingCharacters(in: .whitespaces))
            // Verify against a dummy hash for unknown users too, so timing does not reveal which names exist.
            let hash = found?.passwordHash ?? "$2b$10$abcdefghijklmnopqrstuu5Ddo5nQ4z5JU0rJ2kZP2M5ES5Zk6Sy"
            let valid = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(credentials.password, hash: hash) }
            guard valid, let user = found?.0 else {
                throw APIError(.unauthorized, code: "auth.invalid_credentials", message: "The user name or password is wrong.")
            }
            let token = Tokens.generate()
            let expiresAt = Date().addingTimeInterval(tokenLifetime)
            try await store.storeToken(hash: Tokens.hash(token), user: user, expiresAt: expiresAt)
            return LoggedIn(token: token, expiresAt: expiresAt)
        }
    }
}
