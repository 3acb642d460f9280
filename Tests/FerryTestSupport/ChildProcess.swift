import Foundation

/// Runs a program as a child process and collects its exit status and standard output.
public struct ChildProcess {
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: String

        public init(status: Int32, output: String) {
            self.status = status
            self.output = output
        }

        /// The `peak-memory-bytes:` line that `ferry-zip --stats` prints, measured inside the child.
        public var peakMemory: Int? {
            output.split(separator: "\n").first { $0.hasPrefix("peak-memory-bytes:") }
                .flatMap { Int($0.split(separator: " ").last ?? "") }
        }
    }

    /// Runs to the end; with `includingErrors`, standard error is collected into `output` too.
    public static func run(_ executable: String, _ arguments: [String], includingErrors: Bool = false) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        if includingErrors { process.standardError = output }
        try process.run()
        let data = try await onOwnThread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}

/// Executables built next to the test bundle (`swift build` puts every product in one folder).
public enum BuildProducts {
    public static let directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path

    public static func path(_ name: String) -> String {
        directory + "/" + name
    }
}
