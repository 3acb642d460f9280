@testable import Backend
@testable import Consumer
import FerryService
import Foundation
import FerryContracts
import Hummingbird
import Logging
import HummingbirdTesting
@testable import ProcessingUnit
@testable import Producer
import Testing

@Suite("Service routers")
struct ServiceRouterTests {
    static let routers: [(String, @Sendable () -> Router<FerryRequestContext>)] = [
        ("producer", { buildProducerRouter(publisher: UnusedPublisher(), logger: Logger(label: "test")) }),
        ("consumer", buildConsumerRouter),
        ("processing-unit", {
            let registry = RunRegistry()
            let settings = UnitSettings(dataDirectory: "/nonexistent")
            let runner = JobRunner(settings: settings, sandbox: Sandbox.unsandboxed, environments: EnvironmentCache(settings: settings, pythonVersion: "3", logger: Logger(label: "test")), registry: registry, logger: Logger(label: "test"))
            return buildProcessingUnitRouter(executor: JobExecutor(runner: runner, registry: registry), registry: registry)
        }),
    ]

    @Test(arguments: routers.map(\.0))
    func healthAnswersWithTheServiceName(service: String) async throws {
        let router = try #require(Self.routers.first { $0.0 == service }).1()
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(HealthStatus.self, from: response.body)
                #expect(health == HealthStatus(status: "ok", service: service))
            }
        }
    }
}

struct UnusedPublisher: JobPublisher {
    func publish(_ message: FerryContracts.JobMessage) async throws {
        Issue.record("a health check must not publish")
    }
}
