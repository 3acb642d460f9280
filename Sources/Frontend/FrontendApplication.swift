import Configuration
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The frontend service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultFrontendPort = 8080

/// Builds the frontend service from configuration.
func buildFrontend(reader: ConfigReader) async throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "frontend", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultFrontendPort)
    let backendURL = reader.string(forKey: ConfigKey(ConfigurationKeys.backendURL), default: "http://127.0.0.1:8081")
    let idle = reader.int(forKey: "frontend.idle-timeout", default: 60)
    let total = reader.int(forKey: "frontend.transfer-timeout", default: 4 * 3600)
    guard idle >= 5 else { throw ConfigurationError(key: "frontend.idle-timeout", message: "\(idle) s; use 5 seconds or more") }
    guard total >= idle else { throw ConfigurationError(key: "frontend.transfer-timeout", message: "\(total) s; use at least the idle timeout (\(idle) s)") }
    // Three clients, each with threads of its own: uploads that hang never hold up API calls, and
    // neither holds up the pages' own calls to the Backend.
    let api = HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: nil), logger: logger)
    let uploads = HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: nil), logger: logger)
    let pagesClient = HTTPClient(configuration: .init(maxConcurrentRequests: 16, defaultTimeout: .seconds(30)), logger: logger)
    let proxy = BackendProxy(backendURL: backendURL, client: api, uploads: uploads, timeouts: ProxyTimeouts(idle: .seconds(idle), total: .seconds(total)), logger: logger)
    let pages = try await Pages.load(backendURL: backendURL, client: pagesClient, logger: logger)
    return buildServiceApplication(
        service: "frontend", router: buildFrontendRouter(proxy: proxy, pages: pages), http: http, idleTimeout: .seconds(Int64(idle)), logger: logger
    )
}

/// Static files in Public/ and their types.
let staticTypes = [
    "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "zip": "application/zip",
    "png": "image/png", "svg": "image/svg+xml",
]

/// What the account forms send.
struct AccountForm: Decodable {
    var username: String?
    var password: String?
    var csrf: String?
    var next: String?
    /// An invitation link's token (registration), the operator's setup token (setup).
    var invite: String?
    var token: String?
}

/// What the registration form shows: open, by invitation (with the link's token), or closed.
private func registrationValues(_ registration: RegistrationInfo, invite: String?) -> [String: Any] {
    let hasInvite = !(invite ?? "").isEmpty
    return [
        "invite": invite ?? "", "closed": registration.mode == "closed",
        "needsInvite": registration.mode == "invite" && !hasInvite, "setupNeeded": registration.setupNeeded,
    ]
}

/// The frontend service's routes; its dependencies are parameters so that tests can pass fakes.
func buildFrontendRouter(proxy: BackendProxy, pages: Pages) -> Router<FerryRequestContext> {
    let router = Router(context: FerryRequestContext.self)
    router.addMetricsRoute()
    let publicFolder = Bundle.module.resourcePath! + "/Public"
    let files = FileIO()
    for file in (try? FileManager.default.contentsOfDirectory(atPath: publicFolder)) ?? [] {
        guard let type = staticTypes[(file as NSString).pathExtension] else { continue }
        router.get(RouterPath("/static/" + file)) { _, context in
            try await Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: files.loadFile(path: publicFolder + "/" + file, context: context))
        }
    }

    router.get("/") { request, _ in
        pages.render("home", title: "Run your Python analysis", session: try await pages.session(of: request))
    }

    // MARK: Accounts

    router.get("/login") { request, _ in
        let query = request.uri.queryParameters
        if try await pages.session(of: request) != nil { return Pages.redirect(to: Pages.safeNext(query.get("next"))) }
        let notice = query.get("loggedOut") != nil ? "You are logged out." : (query.get("next") != nil ? "Log in to continue." : nil)
        return accountForm("login", request: request, pages: pages, values: ["next": Pages.safeNext(query.get("next")), "notice": notice as Any])
    }
    router.post("/login") { request, context in
        let form = try await readForm(request)
        let values: [String: Any] = ["username": form.username ?? "", "next": Pages.safeNext(form.next)]
        guard formTokenMatches(form, request), !CrossSite.isCrossSite(request) else {
            return accountForm("login", request: request, pages: pages, status: .forbidden, values: values.merging(["error": expiredForm]) { $1 })
        }
        let answer = try await pages.backend("POST", "/api/v1/auth/session", request: request, context: context, body: ["username": form.username ?? "", "password": form.password ?? ""])
        guard answer.status == 200, let cookie = answer.headers["set-cookie"] else {
            return accountForm("login", request: request, pages: pages, status: .init(code: answer.status), values: values.merging(["error": Pages.errorMessage(answer)]) { $1 })
        }
        return Pages.redirect(to: Pages.safeNext(form.next), headers: [.setCookie: cookie])
    }
    router.get("/register") { request, _ in
        if try await pages.session(of: request) != nil { return Pages.redirect(to: "/upload") }
        let registration = try await pages.registration(request: request)
        return accountForm("register", request: request, pages: pages, values: registrationValues(registration, invite: request.uri.queryParameters.get("invite")))
    }
    router.post("/register") { request, context in
        let form = try await readForm(request)
        let registration = try await pages.registration(request: request)
        let values: [String: Any] = registrationValues(registration, invite: form.invite).merging(["username": form.username ?? ""]) { $1 }
        guard formTokenMatches(form, request), !CrossSite.isCrossSite(request) else {
            return accountForm("register", request: request, pages: pages, status: .forbidden, values: values.merging(["error": expiredForm]) { $1 })
        }
        var credentials = ["username": form.username ?? "", "password": form.password ?? ""]
        if let invite = form.invite, !invite.isEmpty { credentials["invite"] = invite }
        return try await createAccount(
            "register", at: "/api/v1/auth/register", body: credentials, then: "/upload?welcome=1", values: values, request: request, context: context, pages: pages
        )
    }
    // The first administrator, with the operator's one-time setup token (scripts/run prints the link).
    router.get("/setup") { request, _ in
        let registration = try await pages.registration(request: request)
        return accountForm("setup", request: request, pages: pages, values: ["token": request.uri.queryParameters.get("token") ?? "", "done": !registration.setupNeeded])
    }
    router.post("/setup") { request, context in
        let form = try await readForm(request)
        let values: [String: Any] = ["username": form.username ?? "", "token": form.token ?? ""]
        guard formTokenMatches(form, request), !CrossSite.isCrossSite(request) else {
            return accountForm("setup", request: request, pages: pages, status: .forbidden, values: values.merging(["error": expiredForm]) { $1 })
        }
        let setup = ["token": form.token ?? "", "username": form.username ?? "", "password": form.password ?? ""]
        return try await createAccount("setup", at: "/api/v1/auth/setup", body: setup, then: "/admin", values: values, request: request, context: context, pages: pages)
    }
    router.get("/logout") { request, _ in
        guard let session = try await pages.session(of: request) else { return Pages.redirect(to: "/login") }
        return pages.render("logout", title: "Log out", session: session)
    }
    router.post("/logout") { request, _ in
        let form = try await readForm(request)
        guard !CrossSite.isCrossSite(request) else {
            return pages.render("logout", title: "Log out", session: try await pages.session(of: request), status: .forbidden, values: ["error": expiredForm])
        }
        let answer = try await pages.backend("DELETE", "/api/v1/auth/session", request: request, headers: [("X-CSRF-Token", form.csrf ?? "")])
        guard answer.status == 204 || answer.status == 401 else {
            return pages.render("logout", title: "Log out", session: try await pages.session(of: request), status: .forbidden, values: ["error": expiredForm])
        }
        let cookie = answer.headers["set-cookie"] ?? "ferry_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        return Pages.redirect(to: "/login?loggedOut=1", headers: [.setCookie: cookie])
    }

    // MARK: Pages that need a session

    for (path, template, title) in [("/upload", "upload", "Upload a project"), ("/results", "results", "Your jobs"), ("/settings", "settings", "Settings")] {
        router.get(RouterPath(path)) { request, _ in
            guard let session = try await pages.session(of: request) else { return loginFirst(request) }
            return pages.render(template, title: title, session: session, values: ["welcome": request.uri.queryParameters.get("welcome") != nil])
        }
    }
    router.get("/jobs/{id}") { request, context in
        guard let session = try await pages.session(of: request) else { return loginFirst(request) }
        let id = try context.parameters.require("id")
        // Another user's job is as missing as one that never existed, here as in the API.
        let job = try await pages.backend("GET", "/api/v1/jobs/\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-"])) ?? "")", request: request)
        guard job.status == 200, let project = try? job.decode(JobSummary.self).project else {
            return pages.render("notfound", title: "No such job", session: session, status: .notFound, values: ["id": id])
        }
        return pages.render("job", title: "Job \(project)", session: session, values: ["id": id, "project": project])
    }
    router.get("/admin") { request, _ in
        guard let session = try await pages.session(of: request) else { return loginFirst(request) }
        guard session.isAdmin else { return pages.render("forbidden", title: "Administrators only", session: session, status: .forbidden) }
        return pages.render("admin", title: "Administration", session: session)
    }

    // The Frontend is ready when the Backend is (and so, transitively, the database and the broker).
    router.get("/health") { request, context in try await proxy.forward(request, context: context) }
    for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete, .head] {
        router.on("/api/**", method: method) { request, context in try await proxy.forward(request, context: context) }
    }
    return router
}

/// The fields of a job the pages need before their scripts load the rest.
struct JobSummary: Decodable {
    var project: String
}

private let expiredForm = "This form expired or did not come from Ferry's page. It has been renewed: please send it again."

/// The login or registration form, with the double-submit token set as a cookie when the browser has none.
private func accountForm(_ template: String, request: Request, pages: Pages, status: HTTPResponse.Status = .ok, values: [String: Any] = [:]) -> Response {
    let existing = request.cookies[Pages.formCookie]?.value
    let token = existing.flatMap { $0.count == 64 ? $0 : nil } ?? Tokens.generate()
    var headers: HTTPFields = [:]
    if token != existing {
        let secure = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https"
        headers[.setCookie] = Cookie(name: Pages.formCookie, value: token, path: "/", secure: secure, httpOnly: true, sameSite: .strict).description
    }
    var context = values
    context["formToken"] = token
    let title = ["login": "Log in", "setup": "Set up Ferry"][template] ?? "Create an account"
    return pages.render(template, title: title, session: nil, status: status, values: context, headers: headers)
}

/// Asks the Backend to make the account the form describes (`body` has its username and password);
/// once it did, logs the browser in and sends it to `destination`, else shows the form with the error.
private func createAccount(
    _ template: String, at path: String, body: [String: String], then destination: String, values: [String: Any],
    request: Request, context: FerryRequestContext, pages: Pages
) async throws -> Response {
    let created = try await pages.backend("POST", path, request: request, context: context, body: body)
    guard created.status == 201 else {
        return accountForm(template, request: request, pages: pages, status: .init(code: created.status), values: values.merging(["error": Pages.errorMessage(created)]) { $1 })
    }
    let credentials = ["username": body["username"] ?? "", "password": body["password"] ?? ""]
    let session = try await pages.backend("POST", "/api/v1/auth/session", request: request, context: context, body: credentials)
    guard session.status == 200, let cookie = session.headers["set-cookie"] else { return Pages.redirect(to: "/login") }
    return Pages.redirect(to: destination, headers: [.setCookie: cookie])
}

private func formTokenMatches(_ form: AccountForm, _ request: Request) -> Bool {
    guard let sent = form.csrf, let cookie = request.cookies[Pages.formCookie]?.value, cookie.count == 64 else { return false }
    return Tokens.equal(sent, cookie)
}

private func readForm(_ request: Request) async throws -> AccountForm {
    let body = try await request.body.collect(upTo: 64 * 1024)
    return (try? URLEncodedFormDecoder().decode(AccountForm.self, from: String(buffer: body))) ?? AccountForm()
}

private func loginFirst(_ request: Request) -> Response {
    let next = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
    return Pages.redirect(to: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/results"))
}
