import Foundation

/// A configuration value that cannot be used, with the key that holds it and how to fix it.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String {
        let flag = "--" + key.replacingOccurrences(of: ".", with: "-")
        let variable = "FERRY_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
        return "configuration \(key) (\(flag) or \(variable)): \(message)"
    }
}
