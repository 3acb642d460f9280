import FerryService
import Foundation
import HTTPTypes
import Hummingbird

/// Refuses a change that another site made a browser send: every request that a cookie could
/// authenticate (any but a bearer token's) and that is not a GET, HEAD or OPTIONS must come from
/// Ferry's own pages. A browser says where a request comes from in `Sec-Fetch-Site` (anything but
/// `same-origin` or `none` is another site) and in `Origin` (which must name the host the browser
/// asked, `X-Forwarded-Host` when the Frontend passed the request on). Scripts send neither header
/// and are not refused; the session's CSRF token and SameSite cookies guard them besides.
struct CrossSiteGuard<Context: RequestContext>: RouterMiddleware {
    static var refusal: APIError {
        APIError(.forbidden, code: "auth.cross_site", message: "This request came from another web site, so Ferry refused it. Use Ferry's own pages, or a script with an API token.")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !Authenticator.safeMethods.contains(request.method), !Self.hasBearerToken(request), CrossSite.isCrossSite(request) {
            throw Self.refusal
        }
        return try await next(request, context)
    }

    static func hasBearerToken(_ request: Request) -> Bool {
        request.headers[.authorization]?.lowercased().hasPrefix("bearer ") == true
    }
}
