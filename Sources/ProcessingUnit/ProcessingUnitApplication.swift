import Configuration
import FerryService
import Hummingbird
import Logging

/// The processing-unit service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultProcessingUnitPort = 8084

/// Builds the processing-unit service from configuration.
func buildProcessingUnit(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "processing-unit", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultProcessingUnitPort)
    return buildServiceApplication(service: "processing-unit", router: buildProcessingUnitRouter(), http: http, logger: logger)
}

/// The processing-unit service's routes; its dependencies are parameters so that tests can pass fakes.
func buildProcessingUnitRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.addHealthRoute(service: "processing-unit")
    return router
}
