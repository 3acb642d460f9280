import Foundation

/// Reads requirements.txt as researchers' tools write it and allows only what cannot redirect the
/// installation: requirement specifiers, environment markers, comments and `--hash`.
public enum RequirementsFile {
    /// The requirement lines of `bytes`, decoded from UTF-8 (with or without BOM) or UTF-16 (what
    /// PowerShell's `pip freeze >` writes), CRLF or LF. Throws a `BundleError` naming the first bad line.
    public static func parse(_ bytes: [UInt8]) throws -> [String] {
        let text = try decode(bytes)
        var requirements: [String] = []
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = stripComment(String(rawLine)).trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            try check(line, number: index + 1)
            requirements.append(line)
        }
        return requirements
    }

    static func decode(_ bytes: [UInt8]) throws -> String {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]), let text = String(bytes: bytes.dropFirst(3), encoding: .utf8) { return text }
        if bytes.starts(with: [0xFF, 0xFE]), let text = String(bytes: bytes.dropFirst(2), encoding: .utf16LittleEndian) { return text }
        if bytes.starts(with: [0xFE, 0xFF]), let text = String(bytes: bytes.dropFirst(2), encoding: .utf16BigEndian) { return text }
        if let text = String(bytes: bytes, encoding: .utf8) { return text }
        throw BundleError("bundle.requirements_encoding", "requirements.txt is neither UTF-8 nor UTF-16. Save it as UTF-8 text.")
    }

    /// `#` starts a comment at the start of a line or after white space (pip's rule).
    static func stripComment(_ line: String) -> String {
        if line.hasPrefix("#") { return "" }
        guard let range = line.range(of: #"\s#"#, options: .regularExpression) else { return line }
        return String(line[..<range.lowerBound])
    }

    private static var specifier: Regex<Substring> { #/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?\s*(?:(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*(?:,\s*(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*)*)?$/# }

    static func check(_ line: String, number: Int) throws {
        let place = "requirements.txt line \(number)"
        let fix = "list package names and versions only, e.g. numpy==1.26.4"
        if line.contains("${") {
            throw BundleError("bundle.requirements_variable", "\(place): environment variables (${...}) are not allowed; \(fix).")
        }
        if line.hasPrefix("-") {
            let option = line.split(whereSeparator: { $0 == " " || $0 == "=" }).first.map(String.init) ?? line
            throw BundleError("bundle.requirements_option", "\(place): `\(option)` is not allowed; \(fix). Ferry installs from the package index its operator configured.")
        }
        // Everything after the first `;` is an environment marker, which pip evaluates itself.
        var requirement = line.split(separator: ";", maxSplits: 1).first.map(String.init) ?? line
        // `--hash=sha256:...` options may follow a pinned requirement.
        if let hashStart = requirement.range(of: " --hash") {
            let hashes = requirement[hashStart.lowerBound...].split(separator: " ")
            guard hashes.allSatisfy({ $0.hasPrefix("--hash=") || $0.hasPrefix("--hash") }) else {
                throw BundleError("bundle.requirements_option", "\(place): only --hash options may follow a requirement; \(fix).")
            }
            requirement = String(requirement[..<hashStart.lowerBound])
        }
        requirement = requirement.trimmingCharacters(in: .whitespaces)
        if requirement.contains("://") {
            throw BundleError("bundle.requirements_url", "\(place): URLs are not allowed; \(fix).")
        }
        if requirement.contains("@") {
            throw BundleError("bundle.requirements_direct_reference", "\(place): direct references (`name @ ...`, as conda's pip freeze writes) are not allowed; write `name==version` instead.")
        }
        if requirement.hasPrefix(".") || requirement.hasPrefix("/") || requirement.hasPrefix("~") || requirement.contains("\\") || requirement.contains("/") {
            throw BundleError("bundle.requirements_path", "\(place): local paths are not allowed; \(fix).")
        }
        guard requirement.wholeMatch(of: specifier) != nil else {
            throw BundleError("bundle.requirements_syntax", "\(place): `\(requirement)` is not a requirement; \(fix).")
        }
    }
}
