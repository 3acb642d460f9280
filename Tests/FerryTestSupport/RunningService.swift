import FerryHTTPClient
import Foundation

/// One service executable started from the build folder, with its stderr collected.
public final class RunningService: @unchecked Sendable {
    // Sendable invariant: `process` is only started in init and signalled afterwards; Process is thread-safe for that.
    private let process = Process()
    private let errorFile: String

    /// The internal token every service started here shares (FERRY_INTERNAL_TOKEN), unless a test
    /// sets another in `environment` (an empty value removes it).
    public static let internalToken = "ferry-test-internal-token-5f1c8e2a9b7d4c36a0e1f2d3c4b5a697"

    public init(_ executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        errorFile = NSTemporaryDirectory() + "ferry-\(executable)-\(UUID().uuidString).stderr"
        _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: BuildProducts.path(executable))
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FERRY_") }
        env["FERRY_INTERNAL_TOKEN"] = Self.internalToken
        env.merge(environment) { $1 }
        env = env.filter { !$0.value.isEmpty }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
        try process.run()
    }

    deinit {
        if process.isRunning { process.interrupt(); kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: errorFile)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    public var standardError: String {
        (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
    }

    /// Polls GET /health until the service answers (it may still be binding its port).
    public func waitForHealth(port: Int, client: HTTPClient, attempts: Int = 100) async throws -> HTTPResponse {
        var lastError: (any Error)?
        for _ in 0..<attempts {
            guard process.isRunning else { break }
            do {
                return try await client.execute(.init(url: "http://127.0.0.1:\(port)/health"))
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError ?? CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "exited early: \(standardError)"])
    }

    /// Sends SIGTERM and returns the exit status.
    public func terminate() async throws -> Int32 {
        process.terminate()
        return try await waitForExit()
    }

    public func waitForExit() async throws -> Int32 {
        try await onOwnThread { [process] in
            process.waitUntilExit()
            return process.terminationStatus
        }
    }
}
