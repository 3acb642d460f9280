@testable import Backend
@testable import Consumer
import FerryService
import Foundation
@testable import Frontend
import Hummingbird
import HummingbirdTesting
@testable import ProcessingUnit
@testable import Producer
import Testing

@Suite("Service routers")
struct ServiceRouterTests {
    static let routers: [(String, @Sendable () -> Router<BasicRequestContext>)] = [
        ("frontend", buildFrontendRouter),
        ("backend", buildBackendRouter),
        ("producer", buildProducerRouter),
        ("consumer", buildConsumerRouter),
        ("processing-unit", buildProcessingUnitRouter),
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
