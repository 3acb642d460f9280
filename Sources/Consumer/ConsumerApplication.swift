import Configuration
import FerryService
import Hummingbird
import Logging

/// The consumer service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultConsumerPort = 8083

/// Builds the consumer service from configuration.
func buildConsumer(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "consumer", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultConsumerPort)
    return buildServiceApplication(service: "consumer", router: buildConsumerRouter(), http: http, logger: logger)
}

/// The consumer service's routes; its dependencies are parameters so that tests can pass fakes.
func buildConsumerRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.addHealthRoute(service: "consumer")
    return router
}
