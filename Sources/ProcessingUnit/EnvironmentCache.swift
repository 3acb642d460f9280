import Crypto
import Foundation
import Logging

/// Python environments shared by jobs with the same requirements, at `envs/<hash>/`, where the hash
/// covers the Python version and the requirement lines. A build holds an exclusive lock on
/// `envs/<hash>.lock`, so two units never build the same environment at once, and is marked ready
/// only when complete; a half-built one (a crash) is built again.
struct EnvironmentCache: Sendable {
    let settings: UnitSettings
    let pythonVersion: String
    let logger: Logger

    struct Prepared: Sendable {
        var python: String
        var directory: String
        var cacheHit: Bool
    }

    func key(for requirements: [String]) -> String {
        let text = ([pythonVersion] + requirements).joined(separator: "\n")
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined().prefix(32).description
    }

    func prepare(requirements: [String], log: String) async throws -> Prepared {
        let key = key(for: requirements)
        let directory = settings.environments + "/" + key
        let ready = directory + "/.ferry-ready"
        if FileManager.default.fileExists(atPath: ready) {
            return Prepared(python: directory + "/bin/python", directory: directory, cacheHit: true)
        }
        try FileManager.default.createDirectory(atPath: settings.environments, withIntermediateDirectories: true)
        let lock = try await FileLock.acquire(settings.environments + "/" + key + ".lock")
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: ready) {
            return Prepared(python: directory + "/bin/python", directory: directory, cacheHit: true)
        }
        try? FileManager.default.removeItem(atPath: directory)
        try await build(directory: directory, requirements: requirements, log: log)
        let prepared = Prepared(python: directory + "/bin/python", directory: directory, cacheHit: false)
        // The package list is part of every manifest; an environment never changes, so record it once.
        let packages = await freeze(prepared)
        FileManager.default.createFile(atPath: directory + "/.ferry-packages", contents: Data(packages.joined(separator: "\n").utf8))
        FileManager.default.createFile(atPath: ready, contents: Data(requirements.joined(separator: "\n").utf8))
        return prepared
    }

    /// The operator's network settings for installing (proxies, CA bundles, pip's and uv's index
    /// configuration) pass from the unit's environment to the install step; jobs never see them.
    static let installEnvironmentNames: Set<String> = [
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_HTTP_TIMEOUT",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    ]

    private func build(directory: String, requirements: [String], log: String) async throws {
        var environment = ProcessInfo.processInfo.environment.filter { Self.installEnvironmentNames.contains($0.key) }
        environment.merge(["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": settings.environments, "LANG": "C.UTF-8"]) { $1 }
        func step(_ executable: String, _ arguments: [String]) async throws {
            let outcome = try await ChildRun(
                executable: executable, arguments: arguments, directory: settings.environments, environment: environment,
                standardOutput: log, standardError: log, timeout: .seconds(1800)
            ).run()
            guard outcome.exitCode == 0, outcome.signal == nil else {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.suffix(1500) ?? ""
                throw EnvironmentError(message: "installing requirements failed (exit \(outcome.exitCode)):\n\(tail)")
            }
        }
        let requirementsFile = directory + ".requirements.txt"
        try Data((requirements.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: requirementsFile))
        defer { try? FileManager.default.removeItem(atPath: requirementsFile) }
        let index = settings.packageIndex.map { ["--index-url", $0] } ?? []
        if let uv = settings.uv {
            try await step(uv, ["venv", "--quiet", "--python", settings.python, directory])
            if !requirements.isEmpty {
                try await step(uv, ["pip", "install", "--quiet", "--no-config", "--python", directory + "/bin/python", "-r", requirementsFile] + index + (settings.allowSourceBuilds ? [] : ["--no-build"]))
            }
        } else {
            try await step(settings.python, ["-m", "venv", directory])
            if !requirements.isEmpty {
                try await step(directory + "/bin/python", ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirementsFile] + index + (settings.allowSourceBuilds ? [] : ["--only-binary=:all:"]))
            }
        }
    }

    /// `name==version` of every package installed in the environment, for the manifest.
    func installedPackages(_ prepared: Prepared) async -> [String] {
        if let recorded = try? String(contentsOfFile: prepared.directory + "/.ferry-packages", encoding: .utf8) {
            return recorded.split(separator: "\n").map(String.init)
        }
        return await freeze(prepared)
    }

    private func freeze(_ prepared: Prepared) async -> [String] {
        let output = NSTemporaryDirectory() + "ferry-freeze-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let run: ChildRun = if let uv = settings.uv {
            ChildRun(executable: uv, arguments: ["pip", "freeze", "--python", prepared.python], directory: "/", environment: ["PATH": "/usr/bin:/bin"], standardOutput: output, standardError: "/dev/null", timeout: .seconds(60))
        } else {
            ChildRun(executable: prepared.python, arguments: ["-m", "pip", "freeze"], directory: "/", environment: ["PATH": "/usr/bin:/bin"], standardOutput: output, standardError: "/dev/null", timeout: .seconds(60))
        }
        _ = try? await run.run()
        return ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

struct EnvironmentError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// An exclusive flock on a file; acquired off the cooperative pool since it may wait.
final class FileLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    static func acquire(_ path: String) async throws -> FileLock {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
                guard descriptor >= 0, flock(descriptor, LOCK_EX) == 0 else {
                    continuation.resume(throwing: EnvironmentError(message: "cannot lock \(path): \(String(cString: strerror(errno)))"))
                    return
                }
                continuation.resume(returning: FileLock(descriptor: descriptor))
            }
        }
    }

    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
