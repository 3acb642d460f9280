import Configuration
import Hummingbird
import NIOCore
import Logging
import ServiceLifecycle

/// Builds the HTTP application of one Ferry service: its router, the address it binds from
/// configuration, and the long-running services that start before the server and stop after it.
/// `runService()` on the result shuts down gracefully on SIGTERM and SIGINT. With `idleTimeout`, a
/// connection that sends nothing for that long is closed (a slow client cannot hold it open).
public func buildServiceApplication<Context: RequestContext>(
    service name: String,
    router: Router<Context>,
    http: HTTPServerSettings,
    services: [any Service] = [],
    idleTimeout: TimeAmount? = nil,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol where Context.Source == ApplicationRequestContextSource {
    Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: idleTimeout)),
        configuration: .init(address: .hostname(http.host, port: http.port), serverName: "ferry-\(name)"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? http.port) },
        logger: logger
    )
}
