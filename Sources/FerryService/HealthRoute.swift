import Hummingbird

/// The body of `GET /health`: `ok` (200) when every dependency of the service answers, else
/// `unavailable` (503), with each check's result.
public struct HealthStatus: ResponseCodable, Equatable {
    public var status: String
    public var service: String
    public var checks: [String: String]?
    /// What the service wants said without being unready for it (no processing unit takes jobs).
    public var notices: [String: String]?

    public init(status: String, service: String, checks: [String: String]? = nil, notices: [String: String]? = nil) {
        self.status = status
        self.service = service
        self.checks = checks
        self.notices = notices
    }
}

extension Router {
    /// Adds `GET /health` (or `path`): ready only when every check passes (compose's health checks
    /// and `depends_on` rely on it). Checks run at once, each given 5 seconds.
    public func addHealthRoute(path: RouterPath = "/health", service: String, checks: [HealthCheck] = [], notices: [HealthCheck] = []) {
        get(path) { _, _ -> EditedResponse<HealthStatus> in
            // Every probe gets 5 s; one that hangs is answered for, never waited for.
            let results = await withTaskGroup(of: (String, String?).self) { group in
                for check in checks {
                    group.addTask { (check.name, await HealthCheck.within(.seconds(5), check.probe)) }
                }
                var results: [String: String?] = [:]
                for await (name, problem) in group { results[name] = problem }
                return results
            }
            let healthy = results.values.allSatisfy { $0 == nil }
            var said: [String: String] = [:]
            for notice in notices { if let text = await HealthCheck.within(.seconds(5), notice.probe) { said[notice.name] = text } }
            let body = HealthStatus(
                status: healthy ? "ok" : "unavailable", service: service,
                checks: checks.isEmpty ? nil : results.mapValues { $0 ?? "ok" }, notices: said.isEmpty ? nil : said
            )
            return EditedResponse(status: healthy ? .ok : .serviceUnavailable, response: body)
        }
    }
}
