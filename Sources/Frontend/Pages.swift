import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache

/// The logged-in browser, as the Backend knows it from the session cookie.
struct BrowserSession: Decodable, Sendable {
    var username: String
    var isAdmin: Bool
    var csrfToken: String?
}

/// Who may register, and whether the first administrator is still to be set up (`GET /api/v1/auth/registration`).
struct RegistrationInfo: Decodable, Sendable {
    var mode: String
    var setupNeeded: Bool
}

/// Renders Ferry's pages from the Mustache templates in Templates/ (one layout, one template per
/// page) and asks the Backend who a browser is. The pages' data comes from the public API, which the
/// pages' scripts call with the session cookie and the CSRF token the layout puts in a meta tag.
struct Pages: Sendable {
    let library: MustacheLibrary
    let backendURL: String
    let client: HTTPClient
    let logger: Logger

    /// The double-submit cookie that protects the forms used before there is a session (log in,
    /// create an account): its value must come back in the form's `csrf` field.
    static let formCookie = "ferry_csrf"

    static func load(backendURL: String, client: HTTPClient, logger: Logger) async throws -> Pages {
        let library = try await MustacheLibrary(directory: Bundle.module.resourcePath! + "/Templates")
        return Pages(library: library, backendURL: backendURL, client: client, logger: logger)
    }

    /// The session behind the request's cookie, nil when there is none (or it ended).
    func session(of request: Request) async throws -> BrowserSession? {
        guard let cookie = request.headers[.cookie], cookie.contains("ferry_session=") else { return nil }
        let response = try await backend("GET", "/api/v1/auth/session", request: request)
        guard response.status == 200 else { return nil }
        return try response.decode(BrowserSession.self)
    }

    /// Who may register here; open when the Backend cannot say.
    func registration(request: Request) async throws -> RegistrationInfo {
        let answer = try await backend("GET", "/api/v1/auth/registration", request: request)
        return (try? answer.decode(RegistrationInfo.self)) ?? RegistrationInfo(mode: "open", setupNeeded: false)
    }

    /// Calls the Backend for the browser: its cookie, its address, and JSON both ways.
    func backend(
        _ method: String, _ path: String, request: Request, context: FerryRequestContext? = nil, body: (any Encodable)? = nil, headers: [(name: String, value: String)] = []
    ) async throws -> FerryHTTPClient.HTTPResponse {
        var forwarded = headers
        if let cookie = request.headers[.cookie] { forwarded.append(("Cookie", cookie)) }
        if let proto = request.headers[HTTPField.Name("X-Forwarded-Proto")!] { forwarded.append(("X-Forwarded-Proto", proto)) }
        if let context { forwarded.append(("X-Forwarded-For", BackendProxy.forwardedFor(request, peer: context.peerAddress))) }
        var bodyBytes = FerryHTTPClient.HTTPRequest.Body.none
        if let body {
            forwarded.append(("Content-Type", "application/json"))
            bodyBytes = .bytes(Array(try JSONEncoder.ferry().encode(body)))
        }
        do {
            return try await client.execute(.init(method: method, url: backendURL + path, headers: forwarded + [("Accept", "application/json")], body: bodyBytes, timeout: .seconds(30)))
        } catch {
            logger.warning("backend unreachable", metadata: ["error": "\(error)"])
            throw APIError(.badGateway, code: "backend.unavailable", message: "Ferry's backend is not answering right now; try again in a moment.")
        }
    }

    /// A page in the layout. `values` are the page's own; the layout gets the session, the page name
    /// (for the navigation's `aria-current`) and the title.
    func render(_ template: String, title: String, session: BrowserSession?, status: HTTPResponse.Status = .ok, values: [String: Any] = [:], headers: HTTPFields = [:]) -> Response {
        var context = values
        context["title"] = title
        context["current"] = [template: true]
        if let session {
            context["user"] = ["username": session.username, "isAdmin": session.isAdmin, "csrf": session.csrfToken ?? ""] as [String: Any]
        }
        let html = library.render(context, withTemplate: template) ?? "Ferry could not render the page \(template)."
        var fields = headers
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.cacheControl] = "no-store"
        // Everything is served by this Frontend: no other origin may load scripts, frame the pages or receive forms.
        fields[HTTPField.Name("Content-Security-Policy")!] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        fields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        fields[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Where to go after logging in: a path on this site from `next`, else the results. A browser
    /// drops tabs and newlines and reads `\\` as `/`, so `/\t/evil.example` would leave the site:
    /// anything with a control character or a backslash, also percent-encoded, is refused, and what
    /// is left must parse as a path without scheme or host.
    static func safeNext(_ next: String?) -> String {
        func plainPath(_ text: String) -> Bool {
            text.hasPrefix("/") && !text.hasPrefix("//") && !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }
        }
        guard let next, next.utf8.count <= 2048, plainPath(next) else { return "/results" }
        var decoded = next
        for _ in 0..<3 {
            guard let once = decoded.removingPercentEncoding, once != decoded else { break }
            guard plainPath(once) else { return "/results" }
            decoded = once
        }
        guard let url = URLComponents(string: next), url.scheme == nil, url.host == nil, url.path.hasPrefix("/") else { return "/results" }
        return next
    }

    static func redirect(to location: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.location] = location
        return Response(status: .seeOther, headers: fields)
    }

    /// The message of the Backend's JSON error, or a general one.
    static func errorMessage(_ response: FerryHTTPClient.HTTPResponse) -> String {
        struct Envelope: Decodable {
            struct Content: Decodable { var message: String }
            var error: Content
        }
        return (try? JSONDecoder().decode(Envelope.self, from: Data(response.body)).error.message) ?? "Ferry's backend answered \(response.status); try again."
    }
}
