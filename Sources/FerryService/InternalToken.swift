import Configuration
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import FerryContracts

/// The shared secret every internal call carries (`Authorization: Bearer <token>` on
/// `/internal/...`): the Backend's calls to the Producer and the Consumers' calls to their units.
/// It comes from the environment (`FERRY_INTERNAL_TOKEN`) or a file (`FERRY_INTERNAL_TOKEN_FILE`, for
/// compose secrets), never from the command line, where every local user can read it with `ps`, and
/// it is never logged. Tokens are compared as SHA-256 digests, so the comparison takes the same time
/// whatever the caller sent.
public struct InternalToken: Sendable {
    private let value: String
    private let digest: [UInt8]

    public init(_ value: String) throws {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count >= 32, trimmed.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ConfigurationError(key: ConfigurationKeys.internalToken, message: "is shorter than 32 characters or holds spaces; generate one with `openssl rand -hex 32`")
        }
        self.value = trimmed
        digest = Array(SHA256.hash(data: Data(trimmed.utf8)))
    }

    /// Reads `internal.token` (or the file `internal.token-file` names). Every service that makes
    /// or takes internal calls needs it: without it the service refuses to start.
    public init(reader: ConfigReader, arguments: [String] = CommandLine.arguments) throws {
        if arguments.contains(where: { $0 == "--internal-token" || $0.hasPrefix("--internal-token=") }) {
            throw ConfigurationError(key: ConfigurationKeys.internalToken, message: "must not be given on the command line, where every local user can read it; set FERRY_INTERNAL_TOKEN in the environment (or FERRY_INTERNAL_TOKEN_FILE)")
        }
        if let file = reader.string(forKey: ConfigKey(ConfigurationKeys.internalTokenFile)), !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError(key: ConfigurationKeys.internalTokenFile, message: "\(file) cannot be read")
            }
            try self.init(text)
        } else if let text = reader.string(forKey: ConfigKey(ConfigurationKeys.internalToken), isSecret: true), !text.isEmpty {
            try self.init(text)
        } else {
            throw ConfigurationError(key: ConfigurationKeys.internalToken, message: "is required: the secret Ferry's services share for their internal calls; generate one with `openssl rand -hex 32` and give the same to every service (scripts/run and compose do this for you)")
        }
    }

    /// The header an internal call sends.
    public var header: (name: String, value: String) { ("Authorization", "Bearer " + value) }

    /// Whether an `Authorization` header carries this token.
    public func accepts(_ authorization: String?) -> Bool {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
        let sent = Array(SHA256.hash(data: Data(authorization.dropFirst("Bearer ".count).utf8)))
        return zip(sent, digest).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Refuses every request to `/internal/...` that does not carry the internal token: 401, with
/// nothing of the request acted on. `/health` and `/metrics` stay open for health checks and scrapers.
public struct InternalAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: InternalToken

    public init(token: InternalToken) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/internal/") || request.uri.path == "/internal" {
            guard token.accepts(request.headers[.authorization]) else {
                throw APIError(.unauthorized, code: "internal.unauthorized", message: "Internal calls need the services' shared token (FERRY_INTERNAL_TOKEN).")
            }
        }
        return try await next(request, context)
    }
}
