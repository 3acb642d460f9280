import FerryContracts
import FerryService
import Foundation
import HTTPTypes
import Hummingbird

/// Log in, registration (open or by invitation), the operator's first-administrator setup and log
/// out: forms posted by the browser, each checked against its double-submit token before the
/// Backend sees it.
func addAccountRoutes(to router: Router<FerryRequestContext>, pages: Pages) {
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
}

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
