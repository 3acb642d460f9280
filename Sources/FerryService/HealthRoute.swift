import Hummingbird

/// The body of `GET /health`: `ok` (200) when every dependency of the service answers, else
/// `unavailable` (503), with each check's result.
public struct HealthStatus: ResponseCodable, Equatable {
    public var status: String
    public var service: String
    public var checks: [String: String]?

    public init(status: String, service: String, checks: [String: String]? = nil) {
        self.status = status
        self.service = service
        self.checks = checks
    }
}

extension Router {
    /// Adds `GET /health`: ready only when every check passes (compose's health checks and
    /// `depends_on` rely on it). Checks run at once, each given 5 seconds.
    public func addHealthRoute(service: String, checks: [HealthCheck] = []) {
        get("/health") { _, _ -> EditedResponse<HealthStatus> in
            let results = await withTaskGroup(of: (String, String?).self) { group in
                for check in checks {
                    group.addTask {
                        await withTaskGroup(of: String?.self) { race in
                            race.addTask { await check.probe() }
                            race.addTask {
                                try? await Task.sleep(for: .seconds(5))
                                return "no answer within 5 s"
                            }
                            let first: String?? = await race.next()
                            race.cancelAll()
                            return (check.name, first.flatMap { $0 })
                        }
                    }
                }
                var results: [String: String?] = [:]
                for await (name, problem) in group { results[name] = problem }
                return results
            }
            let healthy = results.values.allSatisfy { $0 == nil }
            let body = HealthStatus(
                status: healthy ? "ok" : "unavailable", service: service,
                checks: checks.isEmpty ? nil : results.mapValues { $0 ?? "ok" }
            )
            return EditedResponse(status: healthy ? .ok : .serviceUnavailable, response: body)
        }
    }
}
