import FerryHTTPClient
import Foundation
import Testing

/// The five executables as an operator runs them: real processes, configured by flags or FERRY_* variables.
@Suite("Service executables")
struct ServiceProcessTests {
    static let services = [
        ("Frontend", "frontend"), ("Backend", "backend"), ("Producer", "producer"),
        ("Consumer", "consumer"), ("ProcessingUnit", "processing-unit"),
    ]

    @Test(arguments: services.map(\.0))
    func startsAnswersHealthAndStopsCleanlyOnSIGTERM(executable: String) async throws {
        let port = try unusedPort()
        let service = try RunningService(executable, arguments: ["--http-port", "\(port)"])
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(1), defaultTimeout: .seconds(5)))
        let health = try await service.waitForHealth(port: port, client: client)
        #expect(health.status == 200)
        let expectedName = try #require(Self.services.first { $0.0 == executable }).1
        #expect(String(decoding: health.body, as: UTF8.self).contains(#""service":"\#(expectedName)""#))
        try await client.shutdown()

        let status = try await service.terminate()
        #expect(status == 0, "\(executable) exited with \(status) on SIGTERM; stderr: \(service.standardError)")
    }

    @Test func readsItsPortFromTheEnvironment() async throws {
        let port = try unusedPort()
        let service = try RunningService("Producer", arguments: [], environment: ["FERRY_HTTP_PORT": "\(port)"])
        let client = HTTPClient()
        #expect(try await service.waitForHealth(port: port, client: client).status == 200)
        try await client.shutdown()
        #expect(try await service.terminate() == 0)
    }

    @Test func commandLineWinsOverTheEnvironment() async throws {
        let port = try unusedPort()
        let service = try RunningService("Consumer", arguments: ["--http-port", "\(port)"], environment: ["FERRY_HTTP_PORT": "1"])
        let client = HTTPClient()
        #expect(try await service.waitForHealth(port: port, client: client).status == 200)
        try await client.shutdown()
        #expect(try await service.terminate() == 0)
    }

    @Test func invalidConfigurationExitsWithAMessageThatSaysWhatToFix() async throws {
        let bad = try RunningService("Backend", arguments: ["--http-port", "70000"])
        #expect(try await bad.waitForExit() == 78)
        #expect(bad.standardError.contains("--http-port"))
        #expect(bad.standardError.contains("FERRY_HTTP_PORT"))
        #expect(bad.standardError.contains("70000"))

        let level = try RunningService("Backend", arguments: ["--log-level", "loud"])
        #expect(try await level.waitForExit() == 78)
        #expect(level.standardError.contains("loud"))
    }
}

/// One service executable started from the build folder, with its stderr collected.
final class RunningService: @unchecked Sendable {
    // Sendable invariant: `process` is only started in init and signalled afterwards; Process is thread-safe for that.
    private let process = Process()
    private let errorFile: String

    init(_ executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        errorFile = NSTemporaryDirectory() + "ferry-\(executable)-\(UUID().uuidString).stderr"
        _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: BuildProducts.path(executable))
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FERRY_") }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
        try process.run()
    }

    deinit {
        if process.isRunning { process.interrupt(); kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: errorFile)
    }

    var standardError: String {
        (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
    }

    /// Polls GET /health until the service answers (it may still be binding its port).
    func waitForHealth(port: Int, client: HTTPClient, attempts: Int = 100) async throws -> HTTPResponse {
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
    func terminate() async throws -> Int32 {
        process.terminate()
        return try await waitForExit()
    }

    func waitForExit() async throws -> Int32 {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { [process] in
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }
}
