/// One entry as the central directory declares it. Nothing here has been checked against the data:
/// sizes can lie, which is why extraction counts the real bytes.
public struct ZipEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case file, directory, symlink
        /// A device, FIFO or socket recorded by a Unix zip tool.
        case other
    }

    public enum Compression: Sendable, Equatable {
        case stored, deflated
        case other(Int32)
    }

    /// Position in the central directory, used to open the entry.
    public let index: Int
    /// The path inside the archive, as written by the tool that made it (`project/code.py`, `dir/`).
    public let name: String
    public let kind: Kind
    /// Declared uncompressed size.
    public let size: UInt64
    public let compressedSize: UInt64
    public let compression: Compression
    public let isEncrypted: Bool
    /// Unix permission bits when a Unix tool made the archive.
    public let permissions: UInt32?

    /// Declared size over compressed size; `.infinity` for a non-empty entry stored in zero bytes.
    public var compressionRatio: Double {
        guard compressedSize > 0 else { return size == 0 ? 1 : .infinity }
        return Double(size) / Double(compressedSize)
    }
}
