/// What an upload may hold. The defaults are those of DESIGN.md; operators can change each.
public struct BundleLimits: Sendable {
    public var maxEntries: Int
    public var maxUncompressedBytes: UInt64
    /// Entries above `ratioCheckMinimumBytes` may not be compressed more than this (zip bombs).
    public var maxCompressionRatio: Double
    public var ratioCheckMinimumBytes: UInt64
    /// requirements.txt is read into memory; it is never larger than this in practice.
    public var maxRequirementsBytes: Int

    public init(
        maxEntries: Int = 20_000, maxUncompressedBytes: UInt64 = 4 << 30, maxCompressionRatio: Double = 200,
        ratioCheckMinimumBytes: UInt64 = 1 << 20, maxRequirementsBytes: Int = 1 << 20
    ) {
        self.maxEntries = maxEntries
        self.maxUncompressedBytes = maxUncompressedBytes
        self.maxCompressionRatio = maxCompressionRatio
        self.ratioCheckMinimumBytes = ratioCheckMinimumBytes
        self.maxRequirementsBytes = maxRequirementsBytes
    }
}
