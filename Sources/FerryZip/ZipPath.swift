/// Turns an entry name into a path that stays inside the extraction folder, or says why it cannot.
public enum ZipPath {
    /// The relative components of `name`. Backslashes count as separators (Windows PowerShell's
    /// Compress-Archive writes them); absolute paths, drive letters and `..` are refused.
    public static func components(of name: String) throws -> [String] {
        let normalized = name.replacingOccurrences(of: "\\", with: "/")
        if normalized.hasPrefix("/") || normalized.hasPrefix("~") {
            throw ZipError(.unsafePath, "\(name) is an absolute path; zip the project folder with relative paths")
        }
        if let first = normalized.split(separator: "/").first, first.count == 2, first.last == ":" {
            throw ZipError(.unsafePath, "\(name) starts with a drive letter; zip the project folder with relative paths")
        }
        if normalized.utf8.contains(0) {
            throw ZipError(.unsafePath, "an entry name contains a NUL byte")
        }
        let components = normalized.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        if components.contains("..") {
            throw ZipError(.unsafePath, "\(name) contains \"..\" and would be written outside the project folder")
        }
        return components
    }
}
