import FerryContracts
import Foundation
import Hummingbird

/// The request context of the Backend: the authenticated user, once `BearerAuthenticator` found one.
struct BackendContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var user: User?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        user = nil
    }

    /// Dates with milliseconds (FerryDate), so wait and run times of short jobs are visible.
    var requestDecoder: JSONDecoder { .ferry() }
    var responseEncoder: JSONEncoder { .ferry() }

    /// The caller, or 401 with a message that says how to authenticate.
    func requireUser() throws -> User {
        guard let user else {
            throw APIErrorFactory.unauthorized
        }
        return user
    }
}
