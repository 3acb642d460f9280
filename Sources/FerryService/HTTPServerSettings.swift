import Configuration
import FerryContracts

/// Where a service's HTTP server listens, read from the `http` configuration keys.
public struct HTTPServerSettings: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Reads `http.host` (default 127.0.0.1: internal services are not exposed unless asked) and
    /// `http.port` (the service's own default).
    public init(reader: ConfigReader, defaultPort: Int) throws {
        let host = reader.string(forKey: ConfigKey(ConfigurationKeys.httpHost), default: "127.0.0.1")
        let port = reader.int(forKey: ConfigKey(ConfigurationKeys.httpPort), default: defaultPort)
        guard (0...65_535).contains(port) else {
            throw ConfigurationError(key: ConfigurationKeys.httpPort, message: "\(port) is not a TCP port; use 1-65535 (or 0 for any free port)")
        }
        self.init(host: host, port: port)
    }
}
