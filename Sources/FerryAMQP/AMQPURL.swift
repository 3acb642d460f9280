import Foundation

/// Where a broker is and how to log in: parsed from `amqp://user:password@host:port/vhost`.
/// The vhost is percent-decoded (`/%2f` is `/`); an absent or empty path means the default vhost `/`.
public struct AMQPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String
    public var virtualHost: String

    public init(host: String, port: Int = 5672, username: String = "guest", password: String = "guest", virtualHost: String = "/") {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.virtualHost = virtualHost
    }

    public init(_ string: String) throws {
        let hint = "write it as amqp://user:password@host:5672/vhost"
        guard let components = URLComponents(string: string), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(.invalidURL, "\"\(Self.redacted(string))\" is not a URL; \(hint)")
        }
        guard scheme == "amqp" else {
            throw AMQPError(.invalidURL, "scheme \"\(scheme)\" is not supported; \(hint) (TLS is not supported yet)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw AMQPError(.invalidURL, "\"\(Self.redacted(string))\" names no host; \(hint)")
        }
        var path = components.percentEncodedPath
        if path.hasPrefix("/") { path.removeFirst() }
        let vhost = path.removingPercentEncoding ?? path
        self.init(
            host: host,
            port: components.port ?? 5672,
            username: components.user?.removingPercentEncoding ?? components.user ?? "guest",
            password: components.password?.removingPercentEncoding ?? components.password ?? "guest",
            virtualHost: vhost.isEmpty ? "/" : vhost
        )
    }

    /// The URL without its password, for logs and error messages.
    public var description: String {
        let vhost = virtualHost == "/" ? "" : "/" + (virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost)
        return "amqp://\(username)@\(host):\(port)\(vhost)"
    }

    private static func redacted(_ string: String) -> String {
        guard var components = URLComponents(string: string), components.password != nil else { return string }
        components.password = "***"
        return components.string ?? "(unparsable)"
    }
}
