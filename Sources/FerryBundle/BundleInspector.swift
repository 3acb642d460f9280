import FerryZip
import Foundation

/// What an accepted bundle holds.
public struct BundleReport: Sendable, Equatable {
    /// The project's name: its top folder, or the upload's file name for a zip of the folder's contents.
    public var project: String
    /// Where the project starts inside the archive: `"name/"`, or `""` when code.py is at the root.
    public var root: String
    /// requirements.txt as requirement lines, comments and blank lines removed; empty when there is none.
    public var requirements: [String]
    public var hasOutputFolder: Bool
    public var fileCount: Int
    public var uncompressedBytes: UInt64
    /// `sweep.csv` beside code.py (a sweep's parameter sets), as text; nil when there is none.
    public var sweepTable: String? = nil
    /// `parameters.json` beside code.py (the parameters the project declares), as text; nil when there is none.
    public var parameterDeclarations: String? = nil
}

/// Checks an uploaded zip against the bundle rules, from the central directory and requirements.txt
/// only: nothing is extracted to disk.
public enum BundleInspector {
    /// Files that operating systems add to archives, never part of a project.
    static let litterNames: Set<String> = [".DS_Store", "Thumbs.db", "desktop.ini"]

    public static func inspect(archive path: String, uploadName: String?, limits: BundleLimits = .init()) throws -> BundleReport {
        let reader: ZipReader
        do {
            reader = try ZipReader(path: path, maxEntries: limits.maxEntries)
        } catch let error as ZipError where error.code == .limitExceeded {
            throw BundleError("bundle.too_many_entries", "The zip has more entries than the \(limits.maxEntries) allowed. Leave large data sets out of the bundle, or zip many small files into one.")
        } catch let error as ZipError {
            throw openError(error, path: path)
        }
        defer { reader.close() }

        var files: [(ZipEntry, [String])] = []
        var folders = Set<[String]>()
        var total: UInt64 = 0
        guard reader.entries.count <= limits.maxEntries else {
            throw BundleError("bundle.too_many_entries", "The zip has \(reader.entries.count) entries; at most \(limits.maxEntries) are allowed. Leave large data sets out of the bundle.")
        }
        for entry in reader.entries {
            let components: [String]
            do {
                components = try ZipPath.components(of: entry.name)
            } catch let error as ZipError {
                throw BundleError("bundle.unsafe_path", "\(error.message). Zip the project folder itself, with paths relative to it.")
            }
            if isLitter(components) || components.isEmpty { continue }
            switch entry.kind {
            case .symlink:
                throw BundleError("bundle.symlink", "\(entry.name) is a symbolic link. Replace it with the file it points to, then zip again.")
            case .other:
                throw BundleError("bundle.not_regular_file", "\(entry.name) is not a regular file or folder. Remove it and zip again.")
            case .directory:
                folders.insert(components)
                continue
            case .file:
                break
            }
            if entry.isEncrypted {
                throw BundleError("bundle.encrypted", "\(entry.name) is encrypted. Zip the project again without a password.")
            }
            if entry.size > limits.ratioCheckMinimumBytes, entry.compressionRatio > limits.maxCompressionRatio {
                // A ratio is infinite for an entry that declares bytes but stores none (no Int for it).
                let ratio = entry.compressionRatio.isFinite ? "compressed \(Int(entry.compressionRatio)):1" : "declared with \(entry.size >> 20) MiB stored in no bytes at all"
                throw BundleError("bundle.suspicious_compression", "\(entry.name) is \(ratio), more than the \(Int(limits.maxCompressionRatio)):1 allowed for files over \(limits.ratioCheckMinimumBytes / (1 << 20)) MiB. Zip the project again with a standard tool.")
            }
            total += entry.size
            if total > limits.maxUncompressedBytes {
                throw BundleError("bundle.too_large", "The zip holds more than \(limits.maxUncompressedBytes / (1 << 20)) MiB uncompressed. Leave large data sets out of the bundle.")
            }
            files.append((entry, components))
            for depth in 1..<components.count { folders.insert(Array(components.prefix(depth))) }
        }

        let (project, root) = try locateProject(files: files.map(\.1), uploadName: uploadName)
        let rootComponents = root.isEmpty ? [] : [String(root.dropLast())]
        var requirements: [String] = []
        if let (entry, _) = files.first(where: { $0.1 == rootComponents + ["requirements.txt"] }) {
            let bytes: [UInt8]
            do {
                bytes = try reader.contents(of: entry, maxBytes: limits.maxRequirementsBytes)
            } catch let error as ZipError {
                // Messages about the entry name the upload's own files; file system errors would name the server's.
                throw BundleError("bundle.corrupt", "requirements.txt cannot be read: \(error.code == .io ? "the server could not read it; try again" : error.message)")
            }
            requirements = try RequirementsFile.parse(bytes)
        }
        /// A small text file beside code.py (the sweep's table, the declared parameters), read whole up to `limit`.
        func text(_ name: String, limit: Int, code: String, hint: String) throws -> String? {
            guard let (entry, _) = files.first(where: { $0.1 == rootComponents + [name] }) else { return nil }
            let read: (bytes: [UInt8], truncated: Bool)
            do {
                read = try reader.prefix(of: entry, maxBytes: limit)
            } catch let error as ZipError {
                throw BundleError("bundle.corrupt", "\(name) cannot be read: \(error.code == .io ? "the server could not read it; try again" : error.message)")
            }
            guard !read.truncated else { throw BundleError("bundle.\(code)_too_large", "\(name) is larger than \(limit >> 10) KiB; \(hint).") }
            guard let text = String(validating: read.bytes, as: UTF8.self) else {
                throw BundleError("bundle.\(code)_encoding", "\(name) is not UTF-8 text; save it as UTF-8.")
            }
            return text
        }
        return BundleReport(
            project: project, root: root, requirements: requirements,
            hasOutputFolder: folders.contains(rootComponents + ["output"]),
            fileCount: files.count, uncompressedBytes: total,
            sweepTable: try text("sweep.csv", limit: Self.maxSweepTableBytes, code: "sweep_csv", hint: "a sweep's table is a line per run"),
            parameterDeclarations: try text("parameters.json", limit: 64 << 10, code: "parameters_json", hint: "it declares a project's parameters, a line or two each")
        )
    }

    /// The largest sweep.csv read.
    public static let maxSweepTableBytes = 1 << 20

    /// Whether an entry is operating-system litter (`__MACOSX/`, `.DS_Store`, ...) that Ferry ignores.
    public static func isLitter(name: String) -> Bool {
        isLitter((try? ZipPath.components(of: name)) ?? [])
    }

    static func isLitter(_ components: [String]) -> Bool {
        components.contains("__MACOSX") || litterNames.contains(components.last ?? "") || (components.last ?? "").hasPrefix("._")
    }

    /// Finds the folder holding code.py: the single top folder, or the archive's root.
    static func locateProject(files: [[String]], uploadName: String?) throws -> (project: String, root: String) {
        if files.contains(["code.py"]) {
            return (projectName(fromUpload: uploadName), "")
        }
        let candidates = Set(files.filter { $0.count == 2 && $0[1] == "code.py" }.map { $0[0] }).sorted()
        if candidates.count > 1 {
            throw BundleError("bundle.ambiguous_project", "The zip holds several project folders with a code.py (\(candidates.joined(separator: ", "))). Upload one project per zip.")
        }
        if let project = candidates.first {
            return (project, project + "/")
        }
        if files.isEmpty {
            throw BundleError("bundle.empty", "The zip is empty. Zip the project folder that holds code.py.")
        }
        if let deeper = files.first(where: { $0.last == "code.py" }) {
            throw BundleError("bundle.missing_code_py", "code.py is at \(deeper.joined(separator: "/")), too deep. Zip the folder that holds code.py directly (project-name/code.py).")
        }
        throw BundleError("bundle.missing_code_py", "The zip has no code.py. Put code.py in the project folder (project-name/code.py) and zip that folder.")
    }

    /// `my analysis (2).zip` → `my analysis (2)`; a missing or odd name → `project`.
    static func projectName(fromUpload name: String?) -> String {
        var base = (name ?? "").split(separator: "/").last.map(String.init) ?? ""
        if base.lowercased().hasSuffix(".zip") { base = String(base.dropLast(4)) }
        base = base.trimmingCharacters(in: .whitespacesAndNewlines)
        return base.isEmpty || base.count > 200 ? "project" : base
    }

    private static func openError(_ error: ZipError, path: String) -> BundleError {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.intValue ?? 0
        if size == 0 {
            return BundleError("bundle.empty", "The upload is empty. Choose the zip file of your project.")
        }
        switch error.code {
        case .notAZip:
            return BundleError("bundle.not_a_zip", "The upload is not a zip file. Zip the project folder (right-click → Compress) and upload the .zip.")
        default:
            // libzip's own words, never the message with the upload's path on the server.
            let detail = error.detail.map { " (\($0))" } ?? ""
            return BundleError("bundle.corrupt", "The zip is damaged or incomplete\(detail). Zip the project again and upload it once more.")
        }
    }
}
