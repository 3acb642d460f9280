import Configuration
import FerryService
import Hummingbird
import Logging

/// The frontend service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultFrontendPort = 8080

/// Builds the frontend service from configuration.
func buildFrontend(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "frontend", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultFrontendPort)
    return buildServiceApplication(service: "frontend", router: buildFrontendRouter(), http: http, logger: logger)
}

/// The frontend service's routes; its dependencies are parameters so that tests can pass fakes.
func buildFrontendRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.addHealthRoute(service: "frontend")
    return router
}
