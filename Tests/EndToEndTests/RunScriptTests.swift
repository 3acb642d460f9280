import FerryTestSupport
import Foundation
import Testing

/// scripts/run as a newcomer starts it, with the test build's executables (FERRY_BIN_DIR) and the
/// test broker: a service that cannot start as configured stops it with that service's own message,
/// instead of being restarted forever while jobs wait.
@Suite("scripts/run")
struct RunScriptTests {
    @Test func aServiceThatCannotStartStopsScriptsRunWithItsMessage() async throws {
        let data = try TemporaryDirectory("ferry-run")
        // Seven ports in a row from a random base (the script uses FERRY_PORT to FERRY_PORT + 6).
        let base = Int.random(in: 20_000...60_000)
        let run = Process()
        run.executableURL = URL(fileURLWithPath: Repository.root + "/scripts/run")
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FERRY_") }
        environment.merge([
            "FERRY_BIN_DIR": BuildProducts.directory, "FERRY_PORT": "\(base)", "FERRY_DATA_DIR": data.path,
            "FERRY_AMQP_URL": Stack.amqpURL, "FERRY_UNIT_MAX_PROCESSES": "2",
        ]) { $1 }
        run.environment = environment
        let output = Pipe()
        run.standardOutput = output
        run.standardError = output
        try run.run()
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().async { run.waitUntilExit(); continuation.resume() }
                }
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(120))
                return false
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        if !finished { kill(run.processIdentifier, SIGTERM) }
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(finished, "scripts/run kept going with a unit that cannot start:\n\(said)")
        #expect(run.terminationStatus == 78, "\(said)")
        #expect(said.contains("run: processing-unit-") && said.contains("cannot start as configured"), "\(said)")
        #expect(said.contains("unit.max-processes") && said.contains("too few"), "the unit's own message is not shown:\n\(said)")
        #expect(!said.contains("Ferry is running"), "\(said)")
        // Nothing of it is left running.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { pid in
            guard Int(pid) != nil, let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: line, as: UTF8.self).contains("--http-port\u{0}\(base)")
        } ?? []
        #expect(left.isEmpty, "services of the stopped run are still running: \(left)")
    }
}
