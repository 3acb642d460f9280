import FerryContracts
import FerryService
import Foundation
import Hummingbird

/// The request context of the Backend: the authenticated user, once `BearerAuthenticator` found one.
struct BackendContext: RequestContext {
    struct SessionReference: Sendable {
        /// SHA-256 of the cookie's value, the session's key in the database.
        var hash: String
        var csrf: String
    }

    var coreContext: CoreRequestContextStorage
    var user: User?
    /// Set when the caller was found by the session cookie (a browser), not a bearer token.
    var session: SessionReference?
    /// The connection's peer (the Frontend, for browsers).
    let peerAddress: String?
    /// The client's address, through trusted proxies (`Authenticator` sets it), for the login throttle.
    var clientAddress: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        user = nil
        session = nil
        peerAddress = source.channel.remoteAddress?.ipAddress
    }


    /// Dates with milliseconds (FerryDate), so wait and run times of short jobs are visible.
    var requestDecoder: FerryJSONRequestDecoder { FerryJSONRequestDecoder() }
    var responseEncoder: JSONEncoder { .ferry() }

    /// The caller, or 401 with a message that says how to authenticate.
    func requireUser() throws -> User {
        guard let user else {
            throw APIErrorFactory.unauthorized
        }
        return user
    }
}

extension BackendContext {
    /// The caller when an administrator, else 403.
    func requireAdmin() throws -> User {
        let user = try requireUser()
        guard user.isAdmin else { throw APIErrorFactory.forbidden }
        return user
    }
}
