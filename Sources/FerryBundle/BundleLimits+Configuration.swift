import Configuration
import FerryContracts

extension BundleLimits {
    /// The bundle limits from configuration; the Backend checks uploads and the units check
    /// extraction with the same keys, so set them alike on both.
    public init(reader: ConfigReader) throws {
        self.init()
        maxEntries = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsBundleEntries), default: maxEntries)
        maxUncompressedBytes = UInt64(reader.int(forKey: ConfigKey(ConfigurationKeys.limitsBundleUncompressedMiB), default: Int(maxUncompressedBytes >> 20))) << 20
        maxCompressionRatio = Double(reader.int(forKey: ConfigKey(ConfigurationKeys.limitsBundleCompressionRatio), default: Int(maxCompressionRatio)))
        guard maxEntries > 0 else { throw ConfigurationError(key: ConfigurationKeys.limitsBundleEntries, message: "\(maxEntries); use 1 or more") }
        guard maxUncompressedBytes > 0 else { throw ConfigurationError(key: ConfigurationKeys.limitsBundleUncompressedMiB, message: "use 1 MiB or more") }
        guard maxCompressionRatio >= 10 else { throw ConfigurationError(key: ConfigurationKeys.limitsBundleCompressionRatio, message: "\(maxCompressionRatio); use 10 or more") }
    }
}
