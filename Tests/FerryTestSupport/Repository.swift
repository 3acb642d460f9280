import Foundation

/// The repository the tests run from: scripts, the compose file, the browser test's script.
public enum Repository {
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
