import Crypto
import FerryFiles
import Foundation
import Logging

/// Python environments shared by jobs with the same requirements, at `envs/<hash>/`, where the hash
/// covers the Python version and the requirement lines. A build holds an exclusive lock on
/// `envs/<hash>.lock`, so two units never build the same environment at once.
///
/// Installing runs a package index's files, so it is contained like a job (`Sandbox.buildCommand`):
/// as the build user, in a sandbox with network but nothing of Ferry's volume, no other environment
/// and none of the unit's secrets, in a cgroup with a memory limit, writing only into a staging folder
/// of its own (seen inside at the environment's final path, which its scripts name) and a download
/// cache of its own that is thrown away afterwards. Only then does the unit make the environment
/// root's and read-only, read its package list from the `*.dist-info` metadata, and rename it into
/// place: it is complete or absent, and no later build, job or package can change it.
struct EnvironmentCache: Sendable {
    let settings: UnitSettings
    let sandbox: Sandbox
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

    /// Each build step (create, install, verify) must end within this; a build has three.
    static let stepLimit: Duration = .seconds(1800)
    static let buildLimit: Duration = stepLimit * 3

    func prepare(requirements: [String], log: String) async throws -> Prepared {
        let key = key(for: requirements)
        let directory = settings.environments + "/" + key
        let ready = directory + "/.ferry-ready"
        let prepared = Prepared(python: directory + "/bin/python", directory: directory, cacheHit: true)
        if FileManager.default.fileExists(atPath: ready) { return prepared }
        try FileManager.default.createDirectory(atPath: settings.environments, withIntermediateDirectories: true)
        // Another unit builds the same environment: wait for it, at most as long as a build may take.
        let lock = try await FileLock.acquire(settings.environments + "/" + key + ".lock", limit: Self.buildLimit)
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: ready) { return prepared }
        try await build(key: key, into: directory, requirements: requirements, log: log)
        return Prepared(python: prepared.python, directory: directory, cacheHit: false)
    }

    /// The operator's network settings for installing (proxies, CA bundles, pip's and uv's index
    /// configuration) pass from the unit's environment to the install step; jobs never see them.
    static let installEnvironmentNames: Set<String> = [
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL",
        "UV_FIND_LINKS", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_HTTP_TIMEOUT",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    ]

    /// Of those, the ones that name local files or folders the build must read (certificates, wheel folders).
    static let installPathNames: Set<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT", "PIP_FIND_LINKS", "UV_FIND_LINKS"]

    private func build(key: String, into directory: String, requirements: [String], log: String) async throws {
        let operator_ = ProcessInfo.processInfo.environment.filter { Self.installEnvironmentNames.contains($0.key) }
        var environment = operator_
        environment.merge([
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
            "UV_CACHE_DIR": "/build/cache", "PIP_CACHE_DIR": "/build/cache", "XDG_CACHE_HOME": "/build/cache",
            "UV_PYTHON_DOWNLOADS": "never", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1",
        ]) { $1 }
        let readOnly = operator_.filter { Self.installPathNames.contains($0.key) }.values
            .flatMap { $0.split(whereSeparator: { $0 == " " || $0 == ":" }).map(String.init) }
            .filter { $0.hasPrefix("/") }

        // The staging folder: root's, with the environment and the download cache inside, both the build user's.
        let sandboxed = sandbox.settings.mode == .bubblewrap
        let staging = settings.environments + "/.build-\(key)-\(UUID().uuidString.prefix(8).lowercased())"
        let target = sandboxed ? staging + "/env" : directory, cache = staging + "/cache"
        try await BlockingWork.run { Result { try FileTree.remove(directory) } }.get()  // a build that a crash left half done
        var folders: [(String, mode_t)] = [(staging, 0o711), (cache, 0o700)]
        if sandboxed { folders.append((target, 0o755)) }
        for (folder, mode) in folders {
            guard mkdir(folder, mode) == 0, chmod(folder, mode) == 0 else { throw EnvironmentError(message: "cannot create \(folder): \(String(cString: strerror(errno)))") }
            if folder != staging, sandboxed, chown(folder, sandbox.builder.uid, sandbox.builder.gid) != 0 {
                throw EnvironmentError(message: "cannot give \(folder) to the build user: \(String(cString: strerror(errno)))")
            }
        }
        let cgroup = try sandbox.cgroups.map {
            try JobCgroup(version: $0, name: "ferry-build-" + (staging as NSString).lastPathComponent, memoryBytes: sandbox.settings.buildMemoryBytes, processes: sandbox.settings.maxProcesses)
        }
        // However the build ends, nothing of it outlives it and the staging folder goes, off the
        // cooperative pool (the kill loop waits for the kernel, the tree may be large).
        let cleanUp = { @Sendable in
            cgroup?.killAllAndRemove()
            _ = try? FileTree.remove(staging)
        }
        do {
            try await runSteps(
                key: key, into: directory, requirements: requirements, log: log, staging: staging, target: target, cache: cache,
                environment: environment, readOnly: Array(readOnly), cgroup: cgroup
            )
            await BlockingWork.run(cleanUp)
        } catch {
            await BlockingWork.run(cleanUp)
            throw error
        }
    }

    /// Creates the environment, installs the requirements, verifies it and moves it into place.
    private func runSteps(
        key: String, into directory: String, requirements: [String], log: String, staging: String, target: String, cache: String,
        environment: [String: String], readOnly: [String], cgroup: JobCgroup?
    ) async throws {
        var environment = environment
        let sandboxed = sandbox.settings.mode == .bubblewrap

        let requirementsFile = Data((requirements.joined(separator: "\n") + "\n").utf8)
        func step(_ program: [String]) async throws {
            let command = sandbox.buildCommand(
                program: program, target: (target, directory), cache: cache, readOnly: readOnly,
                files: [(Array(requirementsFile), "/build/requirements.txt")], cgroup: cgroup
            )
            let outcome = try await command.run(environment: environment, standardOutput: log, standardError: log, timeout: Self.stepLimit)
            await BlockingWork.run { cgroup?.killAll() }  // nothing of a step outlives it
            guard outcome.exitCode == 0, outcome.signal == nil, !outcome.timedOut else {
                if cgroup?.oomKilled == true {
                    throw InstallFailure(kind: .requirements, summary: "installing needed more than the \(sandbox.settings.buildMemoryBytes >> 20) MiB of memory an installation may use")
                }
                if outcome.timedOut {
                    throw InstallFailure(kind: .indexUnavailable, summary: "installing took longer than 30 minutes")
                }
                let said = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(20_000)) } ?? ""
                throw InstallFailure.from(log: said, sourceBuildsAllowed: settings.allowSourceBuilds, fallback: "the installer exited with \(outcome.exitCode)")
            }
        }
        // Inside the sandbox the requirements are /build/requirements.txt; without one, the same file in the cache.
        let requirementsPath: String
        if sandboxed {
            requirementsPath = "/build/requirements.txt"
        } else {
            requirementsPath = cache + "/requirements.txt"
            try requirementsFile.write(to: URL(fileURLWithPath: requirementsPath))
            environment.merge(["UV_CACHE_DIR": cache, "PIP_CACHE_DIR": cache, "XDG_CACHE_HOME": cache, "HOME": cache, "TMPDIR": cache]) { $1 }
        }
        let index = settings.packageIndex.map { ["--index-url", $0] } ?? []
        if let uv = settings.uv {
            try await step([uv, "venv", "--quiet", "--python", settings.python, directory])
            if !requirements.isEmpty {
                try await step([uv, "pip", "install", "--quiet", "--no-config", "--python", directory + "/bin/python", "-r", requirementsPath] + index + (settings.allowSourceBuilds ? [] : ["--no-build"]))
            }
        } else {
            try await step([settings.python, "-m", "venv", directory])
            if !requirements.isEmpty {
                try await step([directory + "/bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "-r", requirementsPath] + index + (settings.allowSourceBuilds ? [] : ["--only-binary=:all:"]))
            }
        }

        // Verified: the new interpreter starts cleanly in the sandbox, every `.pth` file of its packages
        // included. Its answer goes to a file in the root-owned staging folder, where the build user
        // can plant nothing.
        let verification = staging + "/verify.log"
        let check = sandbox.buildCommand(program: [directory + "/bin/python", "-c", "import sys, site"], target: (target, directory), cache: cache, readOnly: readOnly, cgroup: cgroup)
        let verified = try await check.run(environment: environment, standardOutput: verification, standardError: verification, timeout: .seconds(120))
        await BlockingWork.run { cgroup?.killAll() }
        let said = (try? String(contentsOfFile: verification, encoding: .utf8)) ?? ""
        guard verified.exitCode == 0, verified.signal == nil, !said.contains("Error processing line") else {
            try? Data(("\nFerry: the new environment does not start cleanly:\n" + said.suffix(4000)).utf8).append(toFile: log)
            let line = said.split(whereSeparator: \.isNewline).last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? "exit \(verified.exitCode)"
            throw InstallFailure(kind: .requirements, summary: "a package breaks Python's start (\(line.prefix(300)))")
        }

        // Finished: the unit's from now on, and read-only for everyone else; then its package list, then into place.
        let packages = try await BlockingWork.run {
            Result {
                if sandboxed { try Self.seal(target) }
                let packages = InstalledPackages.read(environment: target)
                try Self.writeRecord(packages.joined(separator: "\n"), to: target + "/.ferry-packages")
                try Self.writeRecord(requirements.joined(separator: "\n"), to: target + "/.ferry-ready")
                if sandboxed, rename(target, directory) != 0 {
                    throw EnvironmentError(message: "cannot move the new environment into place: \(String(cString: strerror(errno)))")
                }
                return packages
            }
        }.get()
        logger.info("environment built", metadata: ["environment": "\(key)", "packages": "\(packages.count)"])
    }

    /// Gives every file of a finished environment to root, readable by all and writable by none, with
    /// no set-id or sticky bit, without following a link (the build user made the tree).
    static func seal(_ folder: String) throws {
        func seal(_ parent: Int32, _ name: UnsafePointer<CChar>, _ mode: mode_t, isLink: Bool) throws {
            guard fchownat(parent, name, 0, 0, AT_SYMLINK_NOFOLLOW) == 0 else { throw EnvironmentError(message: "cannot seal the environment: \(String(cString: strerror(errno)))") }
            let sealed: mode_t = mode & S_IFMT == S_IFDIR || mode & 0o100 != 0 ? 0o755 : 0o644
            if !isLink, fchmodat(parent, name, sealed, 0) != 0 {
                throw EnvironmentError(message: "cannot seal the environment: \(String(cString: strerror(errno)))")
            }
        }
        guard chown(folder, 0, 0) == 0, chmod(folder, 0o755) == 0 else { throw EnvironmentError(message: "cannot seal the environment: \(String(cString: strerror(errno)))") }
        try FileTree.walk(folder) { entry in
            try (entry.names[entry.names.count - 1] + [0]).withUnsafeBufferPointer { name in
                try name.withMemoryRebound(to: CChar.self) {
                    try seal(entry.parent, $0.baseAddress!, entry.info.st_mode, isLink: entry.info.st_mode & S_IFMT == S_IFLNK)
                }
            }
            return .next
        }
    }

    private static func writeRecord(_ text: String, to path: String) throws {
        guard try DurableFile.create(Data(text.utf8), at: path, permissions: 0o644) else {
            throw EnvironmentError(message: "cannot write \((path as NSString).lastPathComponent): the new environment has one already")
        }
    }

    /// `name==version` of every package installed in the environment, for the manifest.
    func installedPackages(_ prepared: Prepared) async -> [String] {
        if let recorded = try? String(contentsOfFile: prepared.directory + "/.ferry-packages", encoding: .utf8) {
            return recorded.split(separator: "\n").map(String.init)
        }
        let directory = prepared.directory
        return await BlockingWork.run { InstalledPackages.read(environment: directory) }
    }
}

extension Data {
    /// Appends to the file at `path` (which must exist).
    func append(toFile path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: self)
    }
}

/// Ferry's own trouble while preparing an environment (its volume, its folders): retried, never the job's fault.
struct EnvironmentError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

