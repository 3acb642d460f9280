import Hummingbird
import Metrics
import NIOCore
import Prometheus
import Synchronization

/// Every service's metrics: swift-metrics backed by a Prometheus registry, emitted by `GET /metrics`.
public enum FerryMetrics {
    /// The process's registry. The first use bootstraps swift-metrics with it (once per process), so
    /// touch it before creating metrics (`runFerryService` does).
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Jobs wait and run from milliseconds to a day.
        let jobBuckets: [Duration] = [.milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300),
                                      .seconds(900), .seconds(3600), .seconds(4 * 3600), .seconds(24 * 3600)]
        factory.durationHistogramBuckets = ["ferry_job_wait_seconds": jobBuckets, "ferry_job_run_seconds": jobBuckets]
        MetricsSystem.bootstrap(factory)
        return registry
    }()
}

/// One dependency a service needs to do its work; `probe` answers nil when it is fine, else what is wrong.
public struct HealthCheck: Sendable {
    public let name: String
    public let probe: @Sendable () async -> String?

    public init(_ name: String, probe: @escaping @Sendable () async -> String?) {
        self.name = name
        self.probe = probe
    }

    /// What `probe` answers within `limit`, or that it did not answer. The probe is not waited for
    /// beyond the limit (it goes on alone and its answer is dropped).
    public static func within(_ limit: Duration, _ probe: @escaping @Sendable () async -> String?) async -> String? {
        let answered = FirstAnswer()
        return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            @Sendable func answer(_ value: String?) {
                if answered.claim() { continuation.resume(returning: value) }
            }
            Task { answer(await probe()) }
            Task {
                try? await Task.sleep(for: limit)
                answer("no answer within \(limit.components.seconds) s")
            }
        }
    }

    /// A probe that is fine unless `body` throws; the error's description says what is wrong.
    public static func passes(_ name: String, _ body: @escaping @Sendable () async throws -> Void) -> HealthCheck {
        HealthCheck(name) {
            do {
                try await body()
                return nil
            } catch {
                return "\(error)"
            }
        }
    }
}

extension Router {
    /// Adds `GET /metrics` in Prometheus text, after `collect` has set the gauges that are read when
    /// scraped, and counts and times every request (Hummingbird's MetricsMiddleware).
    public func addMetricsRoute(collect: @escaping @Sendable () async -> Void = {}) {
        let registry = FerryMetrics.registry
        add(middleware: MetricsMiddleware())
        get("/metrics") { _, _ -> Response in
            await collect()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
    }
}

/// True for the first caller of `claim()` only.
final class FirstAnswer: Sendable {
    private let taken = Mutex(false)

    func claim() -> Bool {
        taken.withLock { done in
            defer { done = true }
            return !done
        }
    }
}
