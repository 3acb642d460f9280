import Configuration
import FerryContracts
import Logging

extension Logger {
    /// The logger a service's build function makes: labelled `ferry.<service>`, at the configured
    /// `log.level` (default info).
    public static func ferry(service: String, reader: ConfigReader) throws -> Logger {
        var logger = Logger(label: "ferry.\(service)")
        let levelName = reader.string(forKey: ConfigKey(ConfigurationKeys.logLevel), default: "info")
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError(key: ConfigurationKeys.logLevel, message: "unknown level \"\(levelName)\"; use one of \(names)")
        }
        logger.logLevel = level
        return logger
    }
}

/// Metadata keys used across services, so that logs can be searched by them.
public enum LogKeys {
    public static let service = "service"
    public static let jobID = "job.id"
    public static let queue = "amqp.queue"
    public static let address = "http.address"
}
