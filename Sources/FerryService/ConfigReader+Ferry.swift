import Configuration
import FerryContracts
import Foundation

extension ConfigReader {
    /// The reader every Ferry service starts from: the command line first (`--http-port 8081`), then
    /// the environment with Ferry's prefix (`FERRY_HTTP_PORT=8081`), then the defaults at each call site.
    public static func ferry(
        arguments: [String] = CommandLine.arguments,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> ConfigReader {
        ConfigReader(providers: [
            CommandLineArgumentsProvider(arguments: arguments),
            EnvironmentVariablesProvider(
                environmentVariables: environment,
                secretsSpecifier: .dynamic { name, _ in Self.isSecretName(name) }
            ).prefixKeys(with: ConfigKey(ConfigurationKeys.environmentPrefix)),
        ])
    }

    /// Passwords and URLs that may carry credentials are redacted wherever configuration is reported.
    static func isSecretName(_ name: String) -> Bool {
        let upper = name.uppercased()
        return upper.contains("PASSWORD") || upper.contains("SECRET") || upper.contains("TOKEN")
            || upper.hasSuffix("_URL") && upper.contains("AMQP")
    }
}
