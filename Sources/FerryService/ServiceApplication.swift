import Configuration
import Hummingbird
import Logging
import ServiceLifecycle

/// Builds the HTTP application of one Ferry service: its router, the address it binds from
/// configuration, and the long-running services that start before the server and stop after it.
/// `runService()` on the result shuts down gracefully on SIGTERM and SIGINT.
public func buildServiceApplication<Context: RequestContext>(
    service name: String,
    router: Router<Context>,
    http: HTTPServerSettings,
    services: [any Service] = [],
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol where Context.Source == ApplicationRequestContextSource {
    Application(
        router: router,
        configuration: .init(address: .hostname(http.host, port: http.port), serverName: "ferry-\(name)"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? http.port) },
        logger: logger
    )
}
