import FerryTestSupport
import Foundation
import Logging
@testable import ProcessingUnit
import Testing

/// An environment is ready only once every step succeeded and it was verified: a cancelled install
/// (a unit whose shutdown grace ran out) leaves nothing that a later job would take as built.
@Suite("Environment builds")
struct EnvironmentCacheTests {
    /// An installer that makes a real venv, and then, for `pip install`, waits (`sleep`) or succeeds.
    static func fakeInstaller(in work: TemporaryDirectory, install: String) throws -> String {
        let script = work.file("fake-uv")
        try """
            #!/bin/sh
            if [ "$1" = venv ]; then exec /usr/bin/python3 -m venv --without-pip "$5"; fi
            \(install)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return script
    }

    static func cache(in work: TemporaryDirectory, uv: String) -> EnvironmentCache {
        var settings = UnitSettings(dataDirectory: work.path, python: "/usr/bin/python3", uv: uv)
        settings.python = "/usr/bin/python3"
        return EnvironmentCache(settings: settings, sandbox: .unsandboxed, pythonVersion: "3.test", logger: Logger(label: "test"))
    }

    @Test func aCancelledInstallIsNeverMarkedReady() async throws {
        let work = try TemporaryDirectory()
        let cache = Self.cache(in: work, uv: try Self.fakeInstaller(in: work, install: "sleep 30"))
        try FileManager.default.createDirectory(atPath: cache.settings.environments, withIntermediateDirectories: true)
        let requirements = ["six==1.16.0"]
        let building = Task { try await cache.prepare(requirements: requirements, log: work.file("install.log")) }
        try await Task.sleep(for: .seconds(2))
        building.cancel()
        await #expect(throws: CancellationError.self) { _ = try await building.value }
        let directory = cache.settings.environments + "/" + cache.key(for: requirements)
        #expect(!FileManager.default.fileExists(atPath: directory + "/.ferry-ready"), "a cancelled install was marked ready")

        // The next job with the same requirements builds it again, and only a finished build is ready.
        let finishing = Self.cache(in: work, uv: try Self.fakeInstaller(in: work, install: "exit 0"))
        let prepared = try await finishing.prepare(requirements: requirements, log: work.file("install.log"))
        #expect(!prepared.cacheHit)
        #expect(FileManager.default.fileExists(atPath: directory + "/.ferry-ready"))
        #expect(try await finishing.prepare(requirements: requirements, log: work.file("install.log")).cacheHit)
    }

    @Test func aFailedInstallIsNotMarkedReady() async throws {
        let work = try TemporaryDirectory()
        let said = "echo 'error: No solution found when resolving dependencies' >&2; echo '  cause: Because there is no version of six==9.9.9 and you require six==9.9.9, we can conclude that your requirements are unsatisfiable.' >&2; exit 1"
        let cache = Self.cache(in: work, uv: try Self.fakeInstaller(in: work, install: said))
        try FileManager.default.createDirectory(atPath: cache.settings.environments, withIntermediateDirectories: true)
        do {
            _ = try await cache.prepare(requirements: ["six==9.9.9"], log: work.file("install.log"))
            Issue.record("a failed install succeeded")
        } catch let failure as InstallFailure {
            #expect(failure.kind == .requirements)
            #expect(failure.summary.contains("no version of six==9.9.9"), "\(failure.summary)")
        }
        #expect(!FileManager.default.fileExists(atPath: cache.settings.environments + "/" + cache.key(for: ["six==9.9.9"]) + "/.ferry-ready"))
    }
}
