import Configuration
import FerryService
import Hummingbird
import Logging

/// The backend service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultBackendPort = 8081

/// Builds the backend service from configuration.
func buildBackend(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "backend", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultBackendPort)
    return buildServiceApplication(service: "backend", router: buildBackendRouter(), http: http, logger: logger)
}

/// The backend service's routes; its dependencies are parameters so that tests can pass fakes.
func buildBackendRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.addHealthRoute(service: "backend")
    return router
}
