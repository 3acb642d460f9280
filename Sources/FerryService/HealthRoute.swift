import Hummingbird

/// The body of `GET /health`.
public struct HealthStatus: ResponseCodable, Equatable {
    public var status: String
    public var service: String

    public init(status: String, service: String) {
        self.status = status
        self.service = service
    }
}

extension Router {
    /// Adds `GET /health`, which every Ferry service answers (liveness for scripts/run and compose).
    public func addHealthRoute(service: String) {
        get("/health") { _, _ in
            HealthStatus(status: "ok", service: service)
        }
    }
}
