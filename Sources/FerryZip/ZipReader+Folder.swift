import Foundation

/// Limits applied while extracting a whole archive.
public struct ZipExtractionLimits: Sendable {
    public var maxEntries: Int
    /// Total bytes actually written, across all entries.
    public var maxTotalBytes: UInt64

    public init(maxEntries: Int = 20_000, maxTotalBytes: UInt64 = 4 << 30) {
        self.maxEntries = maxEntries
        self.maxTotalBytes = maxTotalBytes
    }
}

extension ZipReader {
    /// Extracts every entry under `folder` (which must exist and be empty of these names). Paths are
    /// checked before anything is written; symlinks, devices and encrypted entries are refused; the
    /// real bytes are counted against `limits` while they are written. Returns the bytes written.
    @discardableResult
    public func extractAll(
        into folder: String, limits: ZipExtractionLimits = .init(), including include: (ZipEntry) -> Bool = { _ in true }
    ) throws -> UInt64 {
        guard entries.count <= limits.maxEntries else {
            throw ZipError(.limitExceeded, "the archive has \(entries.count) entries; at most \(limits.maxEntries) are allowed")
        }
        var planned: [(ZipEntry, [String])] = []
        var seen = Set<[String]>()
        var declared: UInt64 = 0
        for entry in entries where include(entry) {
            let components = try ZipPath.components(of: entry.name)
            guard !components.isEmpty else { continue }
            switch entry.kind {
            case .symlink: throw ZipError(.notRegularFile, "\(entry.name) is a symbolic link; replace it with the file it points to")
            case .other: throw ZipError(.notRegularFile, "\(entry.name) is not a regular file or folder")
            case .file where entry.isEncrypted: throw ZipError(.encrypted, "\(entry.name) is encrypted; zip the project again without a password")
            case .file, .directory: break
            }
            guard seen.insert(components).inserted || entry.kind == .directory else {
                throw ZipError(.corrupt, "\(entry.name) appears twice in the archive")
            }
            declared += entry.size
            guard declared <= limits.maxTotalBytes else {
                throw ZipError(.limitExceeded, "the archive declares more than \(limits.maxTotalBytes) bytes uncompressed")
            }
            planned.append((entry, components))
        }

        var written: UInt64 = 0
        for (entry, components) in planned {
            let path = folder + "/" + components.joined(separator: "/")
            if entry.kind == .directory {
                try createDirectory(path)
                continue
            }
            try createDirectory(folder + "/" + components.dropLast().joined(separator: "/"))
            let executable = (entry.permissions ?? 0) & 0o100 != 0
            written += try extract(entry, to: path, maxBytes: limits.maxTotalBytes - written, permissions: executable ? 0o755 : 0o644)
        }
        return written
    }

    private func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw ZipError(.io, "cannot create folder \(path): \(error.localizedDescription)")
        }
    }
}
