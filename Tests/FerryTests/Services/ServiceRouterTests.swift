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
    static func unitRouter(dataDirectory: String) -> Router<FerryRequestContext> {
        let registry = RunRegistry()
        let settings = UnitSettings(dataDirectory: dataDirectory)
        let runner = JobRunner(settings: settings, sandbox: Sandbox.unsandboxed, environments: EnvironmentCache(settings: settings, sandbox: .unsandboxed, pythonVersion: "3", logger: Logger(label: "test")), registry: registry, logger: Logger(label: "test"))
        return buildProcessingUnitRouter(executor: JobExecutor(runner: runner, registry: registry), registry: registry, dataDirectory: dataDirectory)
    }

    /// Each service with its dependencies reachable, and with the one it needs most failing.
    static let routers: [(String, @Sendable (_ healthy: Bool) -> Router<FerryRequestContext>, String)] = [
        ("producer", { buildProducerRouter(publisher: UnusedPublisher(reachable: $0), logger: Logger(label: "test")) }, "broker"),
        ("consumer", { healthy in
            buildConsumerRouter(checks: [HealthCheck("unit") { healthy ? nil : "GET http://127.0.0.1:1/health: cannot connect" }])
        }, "unit"),
        ("processing-unit", { healthy in
            let folder = NSTemporaryDirectory() + "ferry-unit-health-\(UUID().uuidString)"
            if healthy { try? FileManager.default.createDirectory(atPath: folder + "/jobs", withIntermediateDirectories: true) }
            return unitRouter(dataDirectory: folder)
        }, "volume"),
    ]

    @Test(arguments: routers.map(\.0))
    func healthIsReadyOnlyWhenTheServicesDependenciesAre(service: String) async throws {
        let (_, build, dependency) = try #require(Self.routers.first { $0.0 == service })
        try await Application(router: build(true)).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(HealthStatus.self, from: response.body)
                #expect(health.status == "ok" && health.service == service && health.checks?[dependency] == "ok")
            }
        }
        try await Application(router: build(false)).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let health = try JSONDecoder().decode(HealthStatus.self, from: response.body)
                #expect(health.status == "unavailable" && health.checks?[dependency] != "ok", "\(health)")
            }
        }
    }

    @Test(arguments: routers.map(\.0))
    func metricsAreServedInPrometheusText(service: String) async throws {
        let (_, build, _) = try #require(Self.routers.first { $0.0 == service })
        try await Application(router: build(true)).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                // Hummingbird's request metrics, recorded for the /health request above.
                #expect(String(buffer: response.body).contains("http_server_request_duration"), "\(String(buffer: response.body).prefix(2000))")
            }
        }
    }
}

struct UnusedPublisher: JobPublisher {
    var reachable = true

    func publish(_ message: FerryContracts.JobMessage) async throws {
        Issue.record("a health check must not publish")
    }

    func ready() async throws {
        guard reachable else { throw CancellationError() }
    }
}
