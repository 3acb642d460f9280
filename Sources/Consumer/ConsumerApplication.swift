import Configuration
import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import Hummingbird
import Logging

/// The consumer service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultConsumerPort = 8083

/// Builds the consumer service from configuration.
func buildConsumer(reader: ConfigReader) throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "consumer", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultConsumerPort)
    let url = try AMQPURL(reader: reader)
    let unitURL = reader.string(forKey: ConfigKey(ConfigurationKeys.unitURL), default: "http://127.0.0.1:8084")
    let unitName = try reportedUnitName(unitURL: unitURL, consumerURL: reader.string(forKey: ConfigKey(ConfigurationKeys.consumerURL)))
    let slots = reader.int(forKey: ConfigKey(ConfigurationKeys.unitSlots), default: 2)
    guard (1...256).contains(slots) else {
        throw ConfigurationError(key: ConfigurationKeys.unitSlots, message: "\(slots) slots; use 1-256")
    }
    let token = try InternalToken(reader: reader)
    let dispatcher = JobDispatcher(
        jobs: BrokerLink(url: url, options: try AMQPConnectionOptions(reader: reader, name: "ferry-consumer-jobs"), logger: logger),
        events: BrokerLink(url: url, options: try AMQPConnectionOptions(reader: reader, name: "ferry-consumer-events"), logger: logger),
        // A thread per transfer: every slot's long poll at once, and room to spare.
        unitURL: unitURL, slots: UInt16(slots), unitName: unitName, token: token, maxima: try JobLimitMaxima(reader: reader),
        http: HTTPClient(configuration: .init(maxConcurrentRequests: slots + 4), logger: logger), logger: logger
    )
    let cancels = CancelRelay(
        link: BrokerLink(url: url, options: try AMQPConnectionOptions(reader: reader, name: "ferry-consumer-control"), logger: logger),
        unitURL: unitURL, token: token, http: HTTPClient(logger: logger), logger: logger
    )
    let health = HTTPClient(logger: logger)
    let unit = HealthCheck.passes("unit") { try await health.json("GET", unitURL + "/health", timeout: .seconds(4)) }
    let checks: [HealthCheck] = [.passes("broker") { _ = try await dispatcher.jobs.connection().inspectQueue(Topology.jobsQueue) }, unit]
    return buildServiceApplication(
        service: "consumer", router: buildConsumerRouter(checks: checks, unitCheck: unit), http: http, services: [dispatcher, cancels], logger: logger
    )
}

/// The name the Consumer reports its unit by, which the Backend's admin page asks for the unit's
/// health (`<name>/health`): the unit's own URL, or with `consumer.url` the Consumer's `/unit`,
/// for a Backend that cannot reach the unit (compose: nothing but its Consumer can).
func reportedUnitName(unitURL: String, consumerURL: String?) throws -> String {
    guard let consumerURL, !consumerURL.isEmpty else { return unitURL }
    guard let url = URLComponents(string: consumerURL), ["http", "https"].contains(url.scheme ?? ""), url.host?.isEmpty == false,
          url.query == nil, url.fragment == nil else {
        throw ConfigurationError(key: ConfigurationKeys.consumerURL, message: "\(consumerURL) is not an http(s) address; use the Consumer's address as the Backend reaches it, such as http://consumer-1:8083")
    }
    return (consumerURL.hasSuffix("/") ? String(consumerURL.dropLast()) : consumerURL) + "/unit"
}

/// The consumer service's routes; its dependencies are parameters so that tests can pass fakes.
/// `/unit/health` answers for the unit (the `unitCheck`) to those who cannot reach it.
func buildConsumerRouter(checks: [HealthCheck] = [], unitCheck: HealthCheck? = nil) -> Router<FerryRequestContext> {
    let router = Router(context: FerryRequestContext.self)
    router.addMetricsRoute()
    router.addHealthRoute(service: "consumer", checks: checks)
    if let unitCheck {
        router.addHealthRoute(path: "/unit/health", service: "processing-unit", checks: [unitCheck])
    }
    return router
}
