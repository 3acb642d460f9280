import Configuration
import FerryService
import Hummingbird
import Logging

/// The producer service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultProducerPort = 8082

/// Builds the producer service from configuration.
func buildProducer(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "producer", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultProducerPort)
    return buildServiceApplication(service: "producer", router: buildProducerRouter(), http: http, logger: logger)
}

/// The producer service's routes; its dependencies are parameters so that tests can pass fakes.
func buildProducerRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.addHealthRoute(service: "producer")
    return router
}
