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
import FerryTestSupport
import HTTPTypes
import NIOCore
import Synchronization
import Testing

@Suite("Service routers")
struct ServiceRouterTests {
    static let token = try! InternalToken(RunningService.internalToken)

    static func unitRouter(dataDirectory: String) -> Router<FerryRequestContext> {
        let registry = RunRegistry()
        let settings = UnitSettings(dataDirectory: dataDirectory)
        let runner = JobRunner(settings: settings, sandbox: Sandbox.unsandboxed, environments: EnvironmentCache(settings: settings, sandbox: .unsandboxed, pythonVersion: "3", logger: Logger(label: "test")), registry: registry, logger: Logger(label: "test"))
        return buildProcessingUnitRouter(
            executor: JobExecutor(runner: runner, registry: registry), registry: registry, dataDirectory: dataDirectory, token: token, maxima: JobLimitMaxima()
        )
    }

    /// Each service with its dependencies reachable, and with the one it needs most failing.
    static let routers: [(String, @Sendable (_ healthy: Bool) -> Router<FerryRequestContext>, String)] = [
        ("producer", { buildProducerRouter(publisher: UnusedPublisher(reachable: $0), token: token, maxima: JobLimitMaxima(), logger: Logger(label: "test")) }, "broker"),
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

    /// Where the Backend cannot reach a unit (compose's networks), its Consumer answers for it: the
    /// unit is reported as the Consumer's `/unit`, whose health is the unit's.
    @Test func aConsumerAnswersForItsUnitsHealth() async throws {
        #expect(try reportedUnitName(unitURL: "http://processing-unit-1:8084", consumerURL: nil) == "http://processing-unit-1:8084")
        #expect(try reportedUnitName(unitURL: "http://processing-unit-1:8084", consumerURL: "http://consumer-1:8083/") == "http://consumer-1:8083/unit")
        for bad in ["consumer-1:8083", "ftp://consumer-1", "http://", "http://consumer-1:8083/?a=b"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try reportedUnitName(unitURL: "http://unit", consumerURL: bad) }
        }
        for healthy in [true, false] {
            let router = buildConsumerRouter(
                checks: [HealthCheck("broker") { nil }], unitCheck: HealthCheck("unit") { healthy ? nil : "GET http://processing-unit-1:8084/health: cannot connect" }
            )
            try await Application(router: router).test(.router) { client in
                try await client.execute(uri: "/unit/health", method: .get) { response in
                    #expect(response.status == (healthy ? .ok : .serviceUnavailable))
                    let health = try JSONDecoder().decode(HealthStatus.self, from: response.body)
                    #expect(health.service == "processing-unit" && health.checks?.keys.sorted() == ["unit"] && (health.checks?["unit"] == "ok") == healthy, "\(health)")
                }
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

/// Internal routes act only for the caller with the shared token, and only on messages whose every
/// field checks out: nothing a neighbour on the network sends becomes a path or a limit.
@Suite("Internal endpoints")
struct InternalEndpointTests {
    static func message(jobID: String = UUID().uuidString.lowercased(), bundlePath: String? = nil, memory: Int = 64, time: Int = 60, sweep: String? = nil) -> ByteBuffer {
        let owner = UUID().uuidString.lowercased()
        let sweepMember = sweep.map { #","sweep":\#($0)"# } ?? ""
        let body = #"{"version":1,"jobID":"\#(jobID)","owner":"\#(owner)","project":"p","bundlePath":"\#(bundlePath ?? "bundles/\(jobID).zip")","limits":{"timeLimitSeconds":\#(time),"memoryLimitMiB":\#(memory)},"submittedAt":"2026-12-01T10:00:00.000Z"\#(sweepMember)}"#
        return ByteBuffer(string: body)
    }

    static let json: HTTPFields = [.contentType: "application/json"]
    static var authorized: HTTPFields { [.contentType: "application/json", .authorization: "Bearer \(RunningService.internalToken)"] }

    @Test func theUnitStartsNothingWithoutTheTokenAndNothingFromAMessageThatDoesNotCheckOut() async throws {
        let data = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: data.file("jobs"), withIntermediateDirectories: true)
        let escape = "ferry-escape-\(UUID().uuidString)"
        try await Application(router: ServiceRouterTests.unitRouter(dataDirectory: data.path)).test(.router) { client in
            // No token, a wrong token.
            for headers in [Self.json, [.contentType: "application/json", .authorization: "Bearer " + String(repeating: "0", count: 64)]] as [HTTPFields] {
                try await client.execute(uri: "/internal/v1/runs", method: .post, headers: headers, body: Self.message()) { response in
                    #expect(response.status == .unauthorized)
                    #expect(String(buffer: response.body).contains("internal.unauthorized"))
                }
            }
            for path in ["/internal/v1/runs/\(UUID().uuidString.lowercased())", "/internal/v1/runs/\(UUID().uuidString.lowercased())/cancel"] {
                try await client.execute(uri: path, method: path.hasSuffix("cancel") ? .post : .get, headers: Self.json) { response in
                    #expect(response.status == .unauthorized)
                }
            }
            // With the token: a path for a job id, a bundle elsewhere, a negative or too large limit.
            let refused: [ByteBuffer] = [
                Self.message(jobID: "../../../../../../tmp/\(escape)"),
                Self.message(jobID: "x/../../\(escape)", bundlePath: "bundles/x.zip"),
                Self.message(bundlePath: "../../../etc/shadow"),
                Self.message(memory: -1),
                Self.message(memory: 1 << 40),
                Self.message(time: 0),
            ]
            for body in refused {
                try await client.execute(uri: "/internal/v1/runs", method: .post, headers: Self.authorized, body: body) { response in
                    #expect(response.status == .unprocessableContent, "\(String(buffer: response.body))")
                    #expect(String(buffer: response.body).contains("run.invalid_message"))
                }
            }
            try await client.execute(uri: "/internal/v1/runs/..%2F..%2Fetc", method: .get, headers: Self.authorized) { response in
                #expect(response.status == .badRequest)
            }
            // The unit still serves, and a good message is taken.
            try await client.execute(uri: "/health", method: .get) { response in #expect(response.status == .ok) }
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(escape)"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: data.file("jobs")).isEmpty, "a refused message wrote into the volume")
    }

    @Test func theProducerQueuesNothingWithoutTheTokenNorAnInvalidMessage() async throws {
        let publisher = RecordingPublisher()
        let router = buildProducerRouter(publisher: publisher, token: ServiceRouterTests.token, maxima: JobLimitMaxima(), logger: Logger(label: "test"))
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/internal/v1/jobs", method: .post, headers: Self.json, body: Self.message()) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/internal/v1/jobs", method: .post, headers: Self.authorized, body: Self.message(jobID: "../x", bundlePath: "bundles/../x.zip")) { response in
                #expect(response.status == .unprocessableContent)
            }
            // A sweep's run: its parameters must be names and plain values.
            let sweepID = UUID().uuidString.lowercased()
            for bad in [#"{"sweepID":"\#(sweepID)","index":1,"parameters":[{"name":"2x","value":"1"}]}"#, #"{"sweepID":"../x","index":1,"parameters":[{"name":"a","value":"1"}]}"#] {
                try await client.execute(uri: "/internal/v1/jobs", method: .post, headers: Self.authorized, body: Self.message(sweep: bad)) { response in
                    #expect(response.status == .unprocessableContent)
                }
            }
            #expect(publisher.published.withLock { $0.isEmpty })
            try await client.execute(uri: "/internal/v1/jobs", method: .post, headers: Self.authorized, body: Self.message()) { response in
                #expect(response.status == .accepted)
            }
            let run = #"{"sweepID":"\#(sweepID)","index":2,"parameters":[{"name":"cutoff","value":"10"}]}"#
            try await client.execute(uri: "/internal/v1/jobs", method: .post, headers: Self.authorized, body: Self.message(sweep: run)) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
            }
            #expect(publisher.published.withLock { $0.count } == 2)
            #expect(publisher.published.withLock { $0.last?.sweep?.parameters } == [SweepParameter(name: "cutoff", value: "10")])
        }
    }
}

final class RecordingPublisher: JobPublisher {
    let published = Mutex<[JobMessage]>([])

    func publish(_ message: JobMessage) async throws { published.withLock { $0.append(message) } }
    func ready() async throws {}
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
