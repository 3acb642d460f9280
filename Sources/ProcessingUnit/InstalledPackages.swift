import FerryFiles
import Foundation

/// The packages of an environment, for the manifest, read from the `*.dist-info/METADATA` files in
/// its site-packages, never by starting its interpreter: a package's `.pth` file runs at every start
/// of Python, and outside the sandbox that would run it as the unit. The files are opened without
/// following a link at any step, and only their first part is read.
enum InstalledPackages {
    /// What `pip freeze` leaves out too: the installer itself.
    static let tools: Set<String> = ["pip", "setuptools", "wheel", "distribute"]

    /// `Name==Version` of every distribution, sorted by name.
    static func read(environment: String) -> [String] {
        let root = open(environment, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { return [] }
        defer { close(root) }
        var packages: [String] = []
        guard let lib = try? FileTree.openFolder([Array("lib".utf8)], under: root) else { return [] }
        defer { close(lib) }
        for python in (try? FileTree.list(lib)) ?? [] where python.starts(with: Array("python".utf8)) {
            guard let site = try? FileTree.openFolder([python, Array("site-packages".utf8)], under: lib) else { continue }
            defer { close(site) }
            for entry in (try? FileTree.list(site)) ?? [] where String(decoding: entry, as: UTF8.self).hasSuffix(".dist-info") {
                guard let file = try? FileTree.openRegularFile([entry, Array("METADATA".utf8)], under: site) else { continue }
                defer { close(file) }
                guard let bytes = try? FileTree.read(file, maxBytes: 64 * 1024), let package = parse(bytes), !tools.contains(package.name.lowercased()) else { continue }
                packages.append("\(package.name)==\(package.version)")
            }
        }
        return packages.sorted { $0.lowercased() < $1.lowercased() }
    }

    /// The `Name` and `Version` headers of a core-metadata file (the headers end at the first blank line).
    static func parse(_ bytes: [UInt8]) -> (name: String, version: String)? {
        var name: String?, version: String?
        for line in String(decoding: bytes, as: UTF8.self).split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if line.isEmpty { break }
            if line.hasPrefix("Name:") { name = line.dropFirst(5).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("Version:") { version = line.dropFirst(8).trimmingCharacters(in: .whitespaces) }
        }
        guard let name, let version, !name.isEmpty, !version.isEmpty,
              name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }),
              version.allSatisfy({ $0.isLetter || $0.isNumber || "._-+!".contains($0) }) else { return nil }
        return (name, version)
    }
}
