import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import NIOPosix

/// Who may create an account (`auth.registration`).
enum Registration: String, Sendable, Codable {
    /// Anyone who reaches the page.
    case open
    /// Nobody: the operator's setup and the administrators decide who is in (no sign-up at all).
    case closed
    /// Only with an invitation link an administrator made.
    case invite
}

/// How accounts are checked: bcrypt's cost, administrators by account id (`auth.admins`), who may
/// register, the proxies whose client addresses count, and the slowdowns after failed logins.
struct AuthSettings: Sendable {
    var bcryptCost: UInt8 = 12
    var adminIDs: Set<String> = []
    var registration: Registration = .open
    var trustedProxies: TrustedProxies = .loopback
    var accountThrottle = LoginThrottle(freeAttempts: 5)
    var addressThrottle = LoginThrottle(freeAttempts: 30)
    /// Where the Backend keeps the one-time setup token for the first administrator.
    var setupTokenFile: String?
}

/// Registration, logging in and out, the first administrator's setup, password changes: API tokens
/// for scripts, cookie sessions for browsers.
struct AuthController {
    let store: JobStore
    let settings: AuthSettings
    /// A hash of the configured cost that no password matches: an unknown user name costs what a known one does.
    let unknownUserHash: String

    init(store: JobStore, settings: AuthSettings) {
        self.store = store
        self.settings = settings
        unknownUserHash = Bcrypt.hash(Tokens.generate(), cost: settings.bcryptCost)
    }

    struct Credentials: Decodable {
        var username: String
        var password: String
        /// An invitation link's token, when sign-up needs one.
        var invite: String?
    }

    struct SetupRequest: Decodable {
        var token: String
        var username: String
        var password: String
    }

    struct PasswordChange: Decodable {
        var currentPassword: String
        var newPassword: String
    }

    struct Registered: ResponseEncodable {
        var id: String
        var username: String
        var isAdmin: Bool
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

    /// What the pages need to know before anyone logs in.
    struct RegistrationInfo: ResponseEncodable {
        var mode: Registration
        /// No administrator yet: the operator's setup token is waiting (`/setup`).
        var setupNeeded: Bool
    }

    func register(to router: some RouterMethods<BackendContext>) {
        router.get("/api/v1/auth/registration") { _, _ -> RegistrationInfo in
            RegistrationInfo(mode: settings.registration, setupNeeded: try await store.setupTokenHash() != nil)
        }
        router.post("/api/v1/auth/register") { request, context -> EditedResponse<Registered> in
            let credentials = try await request.decode(as: Credentials.self, context: context)
            let invite = credentials.invite.flatMap { $0.isEmpty ? nil : Tokens.hash($0) }
            switch (settings.registration, invite) {
            case (.closed, _):
                throw APIError(.forbidden, code: "auth.registration_closed", message: "Sign-up is closed on this Ferry; ask its administrators for an account.")
            case (.invite, nil):
                throw APIError(.forbidden, code: "auth.invite_required", message: "Sign-up on this Ferry needs an invitation link; ask one of its administrators for one.")
            default: break
            }
            let (username, hash) = try await checkedNewAccount(credentials.username, credentials.password)
            if let invite, try await !store.claimInvite(hash: invite) {
                throw APIError(.forbidden, code: "auth.invite_invalid", message: "This invitation link was used already, has expired or was withdrawn; ask for a new one.")
            }
            let user = try await store.createUser(username: username, passwordHash: hash)
            if let invite { try await store.finishInvite(hash: invite, user: user) }
            guard let user else { throw Self.nameTaken(username) }
            return EditedResponse(status: .created, response: Registered(id: user.id, username: user.username, isAdmin: false))
        }
        /// The first administrator, with the one-time token the Backend left for the operator.
        router.post("/api/v1/auth/setup") { request, context -> EditedResponse<Registered> in
            let setup = try await request.decode(as: SetupRequest.self, context: context)
            let (username, hash) = try await checkedNewAccount(setup.username, setup.password)
            let tokenHash = Tokens.hash(setup.token.trimmingCharacters(in: .whitespacesAndNewlines))
            guard try await store.consumeSetupToken(hash: tokenHash) else {
                throw APIError(.forbidden, code: "auth.setup_invalid", message: "This setup token is not valid: it was used already, or the Backend made a new one when it last started. Use the one in the file the Backend's log names.")
            }
            guard let user = try await store.createUser(username: username, passwordHash: hash, isAdmin: true) else {
                try await store.storeSetupToken(hash: tokenHash)  // the token stays usable with another name
                throw Self.nameTaken(username)
            }
            if let file = settings.setupTokenFile { unlink(file) }
            return EditedResponse(status: .created, response: Registered(id: user.id, username: user.username, isAdmin: true))
        }
        /// A bearer token for scripts.
        router.post("/api/v1/auth/login") { request, context -> IssuedToken in
            let user = try await verify(try await request.decode(as: Credentials.self, context: context), from: context.clientAddress)
            return try await issueToken(for: user)
        }
        /// A cookie session for browsers.
        router.post("/api/v1/auth/session") { request, context -> Response in
            let user = try await verify(try await request.decode(as: Credentials.self, context: context), from: context.clientAddress)
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
        /// A new password: every other session and every API token of the account end.
        router.post("/api/v1/auth/password") { request, context -> HTTPResponse.Status in
            let user = try context.requireUser()
            let change = try await request.decode(as: PasswordChange.self, context: context)
            _ = try await verify(Credentials(username: user.username, password: change.currentPassword), from: context.clientAddress)
            try Self.checkPassword(change.newPassword)
            let cost = settings.bcryptCost
            let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(change.newPassword, cost: cost) }
            try await store.changePassword(of: user, to: hash, keepingSession: context.session?.hash)
            return .noContent
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

    static func nameTaken(_ username: String) -> APIError {
        APIError(.conflict, code: "auth.username_taken", message: "The user name \(username) is taken; choose another.")
    }

    static func checkPassword(_ password: String) throws {
        guard password.count >= 8, password.utf8.count <= 72 else {
            throw APIError(.unprocessableContent, code: "auth.weak_password", message: "Choose a password of 8 to 72 characters.")
        }
    }

    /// A valid new user name and the bcrypt hash of a valid password.
    private func checkedNewAccount(_ name: String, _ password: String) async throws -> (String, String) {
        let username = name.trimmingCharacters(in: .whitespaces)
        guard username.wholeMatch(of: #/[A-Za-z0-9._-]{3,64}/#) != nil else {
            throw APIError(.unprocessableContent, code: "auth.invalid_username", message: "Choose a user name of 3 to 64 letters, digits, dots, dashes or underscores.")
        }
        try Self.checkPassword(password)
        let cost = settings.bcryptCost
        return (username, try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) })
    }

    private func issueToken(for user: User) async throws -> IssuedToken {
        let token = Tokens.generate()
        let expiresAt = Date().addingTimeInterval(Session.tokenLifetime)
        try await store.storeToken(hash: Tokens.hash(token), user: user, expiresAt: expiresAt)
        return IssuedToken(token: token, expiresAt: expiresAt)
    }

    /// Checks a user name and password, slowed down after repeated failures for the account and
    /// for the client's address.
    private func verify(_ credentials: Credentials, from address: String?) async throws -> User {
        let username = credentials.username.trimmingCharacters(in: .whitespaces)
        let account = [username.lowercased()], place = address.map { ["address:" + $0] } ?? []
        let waits = [await settings.accountThrottle.delay(for: account), await settings.addressThrottle.delay(for: place)].compactMap { $0 }
        if let wait = waits.max() {
            throw APIError(
                .tooManyRequests, code: "auth.too_many_attempts",
                message: "Too many failed logins; wait \(wait) seconds and try again.", details: ["retryAfter": "\(wait)"]
            )
        }
        let found = try await store.credentials(username: username)
        // Unknown names are checked against a hash of the same cost, so timing does not tell which names exist.
        let hash = found?.passwordHash ?? unknownUserHash
        let valid = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(String(credentials.password.prefix(256)), hash: hash) }
        guard valid, let user = found?.0 else {
            await settings.accountThrottle.failed(account)
            await settings.addressThrottle.failed(place)
            throw APIError(.unauthorized, code: "auth.invalid_credentials", message: "The user name or password is wrong.")
        }
        await settings.accountThrottle.succeeded(account[0])
        guard !user.isDisabled else {
            throw APIError(.forbidden, code: "auth.disabled", message: "This account is disabled; ask your Ferry administrator.")
        }
        return user.with(adminIDs: settings.adminIDs)
    }
}
