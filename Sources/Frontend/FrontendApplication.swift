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
    let idle = reader.int(forKey: ConfigKey(ConfigurationKeys.frontendIdleTimeout), default: 60)
    let total = reader.int(forKey: ConfigKey(ConfigurationKeys.frontendTransferTimeout), default: 4 * 3600)
    guard idle >= 5 else { throw ConfigurationError(key: ConfigurationKeys.frontendIdleTimeout, message: "\(idle) s; use 5 seconds or more") }
    guard total >= idle else { throw ConfigurationError(key: ConfigurationKeys.frontendTransferTimeout, message: "\(total) s; use at least the idle timeout (\(idle) s)") }
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

    addAccountRoutes(to: router, pages: pages)

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
    router.get("/sweeps/{id}") { request, context in
        guard let session = try await pages.session(of: request) else { return loginFirst(request) }
        let id = try context.parameters.require("id")
        let sweep = try await pages.backend("GET", "/api/v1/sweeps/\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-"])) ?? "")", request: request)
        guard sweep.status == 200, let project = try? sweep.decode(JobSummary.self).project else {
            return pages.render("notfound", title: "No such sweep", session: session, status: .notFound, values: ["id": id, "sweep": true])
        }
        return pages.render("sweep", title: "Sweep \(project)", session: session, values: ["id": id, "project": project])
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

func loginFirst(_ request: Request) -> Response {
    let next = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
    return Pages.redirect(to: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/results"))
}
