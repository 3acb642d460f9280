import Configuration
import FerryContracts
import FerryService
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Subprocess
import SystemPackage

/// The processing-unit service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultProcessingUnitPort = 8084

/// Builds the processing-unit service from configuration.
func buildProcessingUnit(reader: ConfigReader) async throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "processing-unit", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultProcessingUnitPort)
    var settings = try UnitSettings(reader: reader, port: http.port)
    // The shared volume's folders are the unit's and the Backend's; one the operator made keeps its
    // mode. The sandbox root is the unit's own: the job and build users pass through it to the one
    // folder each sandbox binds, and can list nothing there.
    for folder in [settings.jobs, settings.results] where !FileManager.default.fileExists(atPath: folder) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        chmod(folder, 0o711)
    }
    // The Backend removes what it deletes or expires: the volume's folders the unit made are its owner's.
    settings.volumeOwner = VolumeOwner.of(settings.dataDirectory)
    if let owner = settings.volumeOwner {
        for folder in [settings.jobs, settings.results] { try owner.adopt(folder) }
    }
    for folder in [settings.sandboxRoot, settings.workFolders, settings.environments] {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ConfigurationError(key: ConfigurationKeys.unitSandboxRoot, message: "cannot create \(folder): \(error.localizedDescription)")
        }
        chmod(folder, 0o711)
    }
    var sandboxSettings = try SandboxSettings(reader: reader)
    // A sandboxed job's interpreter must be reachable by the job user: Debian's /usr/bin/python3
    // unless the operator names another (a pyenv Python under /root is not).
    if reader.string(forKey: ConfigKey(ConfigurationKeys.pythonPath)) == nil, sandboxSettings.mode == .bubblewrap, FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") {
        settings.python = "/usr/bin/python3"
    }
    let (python, pythonVersion, pythonPrefix) = try await inspectPython(settings.python)
    settings.python = python
    sandboxSettings.pythonPrefix = pythonPrefix
    if let uv = settings.uv, uv.contains("/shims/") {
        // A pyenv shim needs pyenv's environment; use the binary installed beside an interpreter.
        let pathPython = try? await inspectPython("python3").executable
        settings.uv = [python, pathPython].compactMap { $0 }
            .map { ($0 as NSString).deletingLastPathComponent + "/uv" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    if sandboxSettings.mode == .bubblewrap, let uv = settings.uv, !uv.hasPrefix("/usr/") {
        // Builds see /usr and nothing else of the unit's file system.
        guard reader.string(forKey: ConfigKey(ConfigurationKeys.pythonUV), default: "auto") == "auto" else {
            throw ConfigurationError(key: ConfigurationKeys.pythonUV, message: "\(uv) is outside /usr, where sandboxed builds cannot run it; install uv under /usr (python3 -m pip install --break-system-packages uv puts it in /usr/local/bin), or use off")
        }
        logger.warning("uv at \(uv) is outside /usr, where sandboxed builds cannot run it; environments are built with venv + pip (install uv in /usr/local/bin for faster builds)")
        settings.uv = nil
    }
    let sandbox = try await Sandbox.prepare(sandboxSettings, python: python, sandboxRoot: settings.sandboxRoot)
    if sandbox.settings.mode == .none {
        logger.warning("unit.sandbox=none: jobs run as Ferry's own user with network and access to Ferry's files; use this only where every user is trusted")
    } else {
        logger.info("jobs run sandboxed: user \(sandbox.settings.jobUser), builds as \(sandbox.settings.buildUser), bubblewrap with seccomp, cgroups \(sandbox.cgroups.map { "\($0)" } ?? "none")")
    }
    logger.info("python \(pythonVersion) at \(python), environments with \(settings.uv ?? "venv + pip")")
    let registry = RunRegistry()
    var runner = JobRunner(settings: settings, sandbox: sandbox, environments: EnvironmentCache(settings: settings, sandbox: sandbox, pythonVersion: pythonVersion, logger: logger), registry: registry, logger: logger)
    if settings.executor == .slurm {
        runner.cluster = try await prepareCluster(reader: reader, settings: settings, sandbox: sandbox, logger: logger)
    }
    let grace = reader.int(forKey: ConfigKey(ConfigurationKeys.unitShutdownGrace), default: 30)
    guard grace >= 0 else { throw ConfigurationError(key: ConfigurationKeys.unitShutdownGrace, message: "\(grace) s; use 0 or more seconds") }
    let slots = reader.int(forKey: ConfigKey(ConfigurationKeys.unitSlots), default: 2)
    guard (1...256).contains(slots) else { throw ConfigurationError(key: ConfigurationKeys.unitSlots, message: "\(slots) slots; use 1-256") }
    let executor = JobExecutor(runner: runner, registry: registry, shutdownGrace: .seconds(grace), slots: slots)
    let router = buildProcessingUnitRouter(
        executor: executor, registry: registry, dataDirectory: settings.dataDirectory, token: try InternalToken(reader: reader), maxima: try JobLimitMaxima(reader: reader)
    )
    if runner.cluster != nil {
        // Jobs this unit handed to the cluster before it stopped are adopted, not run again (their
        // messages, redelivered, attach to these runs).
        let records = await BlockingWork.run { [settings] in ClusterRecord.unfinished(settings: settings) }
        for record in records where await executor.submit(record.message) != nil {
            logger.info("adopting a job on the cluster from before the unit restarted", metadata: ["job.id": "\(record.message.jobID)"])
        }
    }
    let janitor = WorkFolderJanitor(jobs: settings.jobs, workFolders: settings.workFolders, keep: TimeInterval(settings.keepWorkSeconds), logger: logger)
    let arrayJanitor: [any Service] = runner.cluster.map { [SweepArrayJanitor(runner: runner, cluster: $0, logger: logger)] } ?? []
    return buildServiceApplication(service: "processing-unit", router: router, http: http, services: [executor, janitor] + arrayJanitor, logger: logger)
}

/// The Slurm executor: the cluster must answer (and have the partition), and the nodes find the
/// seccomp filter for their sandboxes in the sandbox root, which they share with the unit.
private func prepareCluster(reader: ConfigReader, settings: UnitSettings, sandbox: Sandbox, logger: Logger) async throws -> ClusterExecutor {
    let cluster = try ClusterSettings(reader: reader)
    let scheduler = SlurmScheduler()
    do {
        try await scheduler.check(partition: cluster.partition)
    } catch {
        throw ConfigurationError(key: ConfigurationKeys.unitExecutor, message: "slurm: \(error); run the unit on a submit host of the cluster (sinfo must answer), or use the local executor")
    }
    let filter = settings.sandboxRoot + "/job-seccomp.bpf"
    if sandbox.settings.mode == .bubblewrap {
        let temporary = filter + ".\(getpid()).partial"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(sandbox.syscallFilter), attributes: [.posixPermissions: 0o644]),
              rename(temporary, filter) == 0 else {
            throw ConfigurationError(key: ConfigurationKeys.unitSandboxRoot, message: "cannot write the nodes' seccomp filter into \(settings.sandboxRoot)")
        }
    }
    if cluster.sandbox == .none || sandbox.settings.mode == .none {
        logger.warning("slurm.sandbox=none: code.py runs on the nodes without Ferry's sandbox (the cluster's own limits still hold); use this only where the nodes do not allow user namespaces")
    }
    logger.info("jobs run on the Slurm cluster", metadata: [
        "partition": "\(cluster.partition ?? "(default)")", "account": "\(cluster.account ?? "(default)")", "sandbox": "\(cluster.sandbox.rawValue)",
    ])
    return ClusterExecutor(scheduler: scheduler, settings: cluster, filterPath: filter, asRoot: geteuid() == 0)
}

/// The interpreter's real path (not a pyenv shim), its version, e.g. `3.11.7`, and the folder it is
/// installed in, asked of the interpreter itself; the version is part of every environment's cache
/// key, and the sandbox binds the folder read-only when it is outside /usr.
func inspectPython(_ python: String) async throws -> (executable: String, version: String, prefix: String) {
    let inherited = ProcessInfo.processInfo.environment
    let names: [(Subprocess.Environment.Key, String)] = [("PATH", "PATH"), ("HOME", "HOME"), ("PYENV_ROOT", "PYENV_ROOT"), ("PYENV_VERSION", "PYENV_VERSION")]
    let environment = Dictionary(uniqueKeysWithValues: names.compactMap { key, name in inherited[name].map { (key, $0) } })
    let executable = UnitSettings.find(python) ?? python
    let probe = "import sys; print(sys.executable); print(sys.version.split()[0]); print(sys.base_prefix)"
    // A plain run with its output collected: swift-subprocess does this (ChildRun is for what it
    // cannot do). An interpreter that hangs (a shim waiting for input) is killed after 30 s.
    let answer: (succeeded: Bool, output: String) = try await withThrowingTaskGroup { group in
        group.addTask {
            do {
                let result = try await Subprocess.run(
                    .path(FilePath(executable)), arguments: ["-c", probe], environment: .custom(environment), workingDirectory: "/",
                    output: .string(limit: 64 * 1024), error: .combinedWithOutput
                )
                return (result.terminationStatus.isSuccess, result.standardOutput)
            } catch let error as SubprocessError {
                return (false, "it cannot be started: \(error)")
            }
        }
        group.addTask {
            try await Task.sleep(for: .seconds(30))
            return (false, "it did not answer within 30 s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
    let lines = answer.output.split(separator: "\n").map(String.init)
    guard answer.succeeded, lines.count >= 3 else {
        throw ConfigurationError(key: ConfigurationKeys.pythonPath, message: "\(python) does not run (\(lines.joined(separator: " "))); install Python 3 or point python.path at it")
    }
    return (lines[0], lines[1], lines[2])
}

/// The processing-unit service's routes; its dependencies are parameters so that tests can pass fakes.
func buildProcessingUnitRouter(
    executor: JobExecutor, registry: RunRegistry, dataDirectory: String, token: InternalToken, maxima: JobLimitMaxima
) -> Router<FerryRequestContext> {
    let router = Router(context: FerryRequestContext.self)
    router.addMetricsRoute()
    // Ready when it can write to the shared volume, where every job's files go.
    router.addHealthRoute(service: "processing-unit", checks: [.passes("volume") {
        let probe = dataDirectory + "/jobs/.health-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: probe, contents: Data("ok".utf8)) else {
            throw ConfigurationError(key: ConfigurationKeys.dataDirectory, message: "\(dataDirectory)/jobs is not writable")
        }
        try FileManager.default.removeItem(atPath: probe)
    }])
    // Only the Consumer (with the internal token) may start or cancel runs, and every field of what it
    // sends is checked before the unit, which runs as root, turns any of it into a path or a limit.
    router.add(middleware: InternalAuthMiddleware(token: token))
    /// Starts a run (or attaches to the existing one) and answers its state.
    router.post("/internal/v1/runs") { request, context -> RunState in
        let message = try await request.decode(as: JobMessage.self, context: context)
        do {
            try message.check(within: maxima)
        } catch {
            throw APIError(.unprocessableContent, code: "run.invalid_message", message: "The job message is refused: \(error).")
        }
        // A nearly full volume starts nothing new: the job waits in the queue for room (never fails).
        var space = statvfs()
        if statvfs(dataDirectory, &space) == 0, Int64(space.f_bavail) * Int64(space.f_frsize) < executor.runner.settings.minFreeBytes,
           await registry.state(of: message.jobID) == nil {
            throw APIError(.serviceUnavailable, code: "run.volume_full", message: "The shared volume is nearly full; the job waits in the queue until there is room.")
        }
        guard let state = await executor.submit(message) else {
            throw APIError(.serviceUnavailable, code: "run.busy", message: "This unit runs as many jobs as it has slots, or is shutting down; the job goes back to the queue.")
        }
        return state
    }
    /// A run's state; with `after=<status>` it waits (up to `wait` seconds) until the status differs.
    router.get("/internal/v1/runs/{id}") { request, context -> RunState in
        let id = try runID(context)
        var state = await registry.state(of: id)
        if let after = request.uri.queryParameters.get("after").flatMap(JobStatus.init(rawValue:)) {
            let wait = min(request.uri.queryParameters.get("wait", as: Int.self) ?? 25, 60)
            let revision = request.uri.queryParameters.get("revision", as: Int.self)
            // On SIGTERM the HTTP server waits for requests in flight: a long poll ends at once then.
            state = await withGracefulShutdownHandler {
                await registry.wait(for: id, changingFrom: after, revision: revision, timeout: .seconds(wait))
            } onGracefulShutdown: {
                Task { await registry.shutDown() }
            }
        }
        guard let state else { throw APIError(.notFound, code: "run.not_found", message: "This unit has no run of job \(id).") }
        return state
    }
    /// Cancels a run this unit has (a cancel request relayed by the Consumer from `ferry.control`).
    router.post("/internal/v1/runs/{id}/cancel") { _, context -> RunState in
        let id = try runID(context)
        guard let state = await registry.cancel(id) else { throw APIError(.notFound, code: "run.not_found", message: "This unit has no run of job \(id).") }
        return state
    }
    return router
}

/// The run's job id from the path, refused unless it is a job id.
private func runID(_ context: FerryRequestContext) throws -> String {
    let id = try context.parameters.require("id")
    guard JobID.isValid(id) else { throw APIError(.badRequest, code: "run.invalid_id", message: "\(id.prefix(64)) is not a job id.") }
    return id
}

extension RunState: ResponseEncodable {}
