import Foundation

/// Why requirements.txt could not be installed, told apart for the people who must act: a
/// requirement that can never install (not on the index, no wheel for this platform while source
/// builds are off, a version conflict, a package that breaks the interpreter) is the researcher's to
/// fix and ends the job `failed`; an index that cannot be reached is Ferry's, and the job is tried
/// again later.
struct InstallFailure: Error, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case requirements
        case indexUnavailable
    }

    var kind: Kind
    /// One or two lines from the installer that say what failed.
    var summary: String

    var description: String { summary }

    /// Reads the installer's log (uv's or pip's words) and says which kind of failure it shows.
    static func from(log: String, sourceBuildsAllowed: Bool, fallback: String) -> InstallFailure {
        let text = log.replacing(#/\u{1B}\[[0-9;]*m/#, with: "")
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let lowered = text.lowercased()
        let network = [
            "error sending request", "dns error", "failed to connect", "connection refused", "connection reset", "operation timed out",
            "could not fetch url", "max retries exceeded", "temporary failure in name resolution", "name or service not known",
            "network is unreachable", "failed to establish a new connection", "read timed out", "certificate verify failed", "invalid peer certificate",
        ]
        if network.contains(where: lowered.contains) {
            let line = lines.first { line in network.contains { line.lowercased().contains($0) } } ?? fallback
            return InstallFailure(kind: .indexUnavailable, summary: "the package index could not be reached (\(String(line.prefix(200))))")
        }
        // uv: "error: No solution found…" with its "cause:" lines (or "╰─▶" on a terminal); pip: "ERROR: …".
        func after(_ prefix: String) -> String? {
            lines.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) }
        }
        let uvCause: String? = after("cause:") ?? after("╰─▶")
        let uvError: String? = after("error:")
        let pipReason: String? = after("ERROR: Could not find a version") .map { "could not find a version" + $0 } ?? after("ERROR:")
        var summary: String = uvCause ?? uvError ?? pipReason ?? fallback
        summary = String(summary.prefix(400))
        let wheels = ["no usable wheels", "no wheels", "building from source is disabled", "only-binary"]
        if !sourceBuildsAllowed, wheels.contains(where: lowered.contains) {
            summary += " (this Ferry installs wheels only: choose a version that has a wheel for Linux and this Python, or ask the operators to allow source builds)"
        }
        return InstallFailure(kind: .requirements, summary: summary)
    }
}
