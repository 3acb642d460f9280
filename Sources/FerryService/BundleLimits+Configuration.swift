import Configuration
import FerryBundle

extension BundleLimits {
    /// The bundle limits from configuration; the Backend checks uploads and the units check
    /// extraction with the same keys, so set them alike on both.
    public init(reader: ConfigReader) throws {
        self.init()
        maxEntries = reader.int(forKey: "limits.bundle-entries", default: maxEntries)
        maxUncompressedBytes = UInt64(reader.int(forKey: "limits.bundle-uncompressed-mib", default: Int(maxUncompressedBytes >> 20))) << 20
        maxCompressionRatio = Double(reader.int(forKey: "limits.bundle-compression-ratio", default: Int(maxCompressionRatio)))
        guard maxEntries > 0 else { throw ConfigurationError(key: "limits.bundle-entries", message: "\(maxEntries); use 1 or more") }
        guard maxUncompressedBytes > 0 else { throw ConfigurationError(key: "limits.bundle-uncompressed-mib", message: "use 1 MiB or more") }
        guard maxCompressionRatio >= 10 else { throw ConfigurationError(key: "limits.bundle-compression-ratio", message: "\(maxCompressionRatio); use 10 or more") }
    }
}
