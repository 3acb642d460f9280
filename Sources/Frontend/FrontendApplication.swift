import Configuration
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import Hummingbird
import Logging

/// The frontend service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultFrontendPort = 8080

/// Builds the frontend service from configuration.
func buildFrontend(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "frontend", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultFrontendPort)
    let backendURL = reader.string(forKey: ConfigKey(ConfigurationKeys.backendURL), default: "http://127.0.0.1:8081")
    let proxy = BackendProxy(backendURL: backendURL, client: HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: nil), logger: logger), logger: logger)
    return buildServiceApplication(service: "frontend", router: buildFrontendRouter(proxy: proxy), http: http, logger: logger)
}

/// The pages this Frontend serves, each a file in Public/.
let frontendPages = ["/": "index.html", "/upload": "upload.html", "/results": "results.html"]

/// The frontend service's routes; its dependencies are parameters so that tests can pass fakes.
func buildFrontendRouter(proxy: BackendProxy) -> Router<FerryRequestContext> {
    let router = Router(context: FerryRequestContext.self)
    let publicFolder = Bundle.module.resourcePath! + "/Public"
    let files = FileIO()
    for (path, file) in frontendPages {
        router.get(RouterPath(path)) { _, context in
            try await Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: files.loadFile(path: publicFolder + "/" + file, context: context))
        }
    }
    for (file, type) in [("app.css", "text/css; charset=utf-8"), ("app.js", "text/javascript; charset=utf-8"), ("example-bundle.zip", "application/zip")] {
        router.get(RouterPath("/static/" + file)) { _, context in
            try await Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: files.loadFile(path: publicFolder + "/" + file, context: context))
        }
    }
    router.get("/health") { request, context in try await proxy.forward(request, context: context) }
    for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete, .head] {
        router.on("/api/**", method: method) { request, context in try await proxy.forward(request, context: context) }
    }
    return router
}
