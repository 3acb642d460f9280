import Foundation
import Hummingbird
import Logging

/// Runs a service built by `build` until SIGTERM or SIGINT. A build failure (bad configuration, a
/// port in use) is reported in one line on stderr with exit status 78 (EX_CONFIG), not as a crash.
public func runFerryService<App: ApplicationProtocol>(_ build: @Sendable () async throws -> App) async {
    _ = FerryMetrics.registry  // swift-metrics goes to Prometheus before any metric is made
    let app: App
    do {
        app = try await build()
    } catch {
        FileHandle.standardError.write(Data("ferry: cannot start: \(error)\n".utf8))
        exit(78)
    }
    do {
        try await app.runService()
    } catch {
        FileHandle.standardError.write(Data("ferry: stopped with an error: \(error)\n".utf8))
        exit(1)
    }
}
