import Configuration
import FerryService
import Foundation
#if canImport(Glibc)
import Glibc
import FerryContracts
#endif

/// How `code.py` is contained. With `bubblewrap` (the default) every job runs:
/// - as the unprivileged job user (`unit.job-user`, default `ferry-job`), never as Ferry's own user,
///   with no capabilities and `no_new_privs` (setpriv);
/// - in new user, mount, PID, network, IPC and UTS namespaces (bubblewrap), with no way to make
///   namespaces of its own (`--disable-userns`, and the seccomp filter of `SyscallPolicy`): no network
///   at all (only its own empty loopback), its own process tree, and a file system of `/usr`
///   read-only, its environment read-only, a private size-limited `/tmp` and its own work folder,
///   nothing else of the volume (other jobs, the database, configuration);
/// - in a cgroup of its own with its memory and process-count limits, and with rlimits for CPU time
///   and file size (prlimit); its output is watched against the output limits while it runs.
/// Installing requirements runs the same way as the build user (`unit.build-user`), with network.
/// `none` runs jobs as the unit's own user without any of this; the operator must opt in to it and
/// every job logs a warning.
struct SandboxSettings: Sendable {
    enum Mode: String, Sendable { case bubblewrap, none }

    var mode: Mode
    var jobUser: String
    /// The user environments are built as: not the job user, so that no job can touch a build.
    var buildUser: String
    /// Processes (and threads) a job may have at once.
    var maxProcesses: Int
    /// Bytes a job may write: its work folder and its logs together, and any single file.
    var maxOutputBytes: UInt64
    /// Files and folders a job may create in its work folder.
    var maxOutputFiles: Int
    /// Memory an environment build may use.
    var buildMemoryBytes: UInt64
    /// Folders the interpreter lives in outside /usr (a pyenv or uv Python), bound read-only.
    var pythonPrefix: String?

    /// What a job may leave in its work folder and logs, wherever it runs.
    var outputLimits: OutputLimits { OutputLimits(bytes: maxOutputBytes, files: maxOutputFiles) }

    init(
        mode: Mode = .none, jobUser: String = "ferry-job", buildUser: String = "ferry-build", maxProcesses: Int = 256,
        maxOutputBytes: UInt64 = 10 << 30, maxOutputFiles: Int = 100_000, buildMemoryBytes: UInt64 = 4 << 30, pythonPrefix: String? = nil
    ) {
        self.mode = mode
        self.jobUser = jobUser
        self.buildUser = buildUser
        self.maxProcesses = maxProcesses
        self.maxOutputBytes = maxOutputBytes
        self.maxOutputFiles = maxOutputFiles
        self.buildMemoryBytes = buildMemoryBytes
        self.pythonPrefix = pythonPrefix
    }

    init(reader: ConfigReader) throws {
        let name = reader.string(forKey: ConfigKey(ConfigurationKeys.unitSandbox), default: Mode.bubblewrap.rawValue)
        guard let mode = Mode(rawValue: name) else {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "\(name) is not a sandbox; use bubblewrap, or none to run jobs without isolation")
        }
        let outputMiB = reader.int(forKey: ConfigKey(ConfigurationKeys.unitMaxOutputMiB), default: 10_240)
        let buildMiB = reader.int(forKey: ConfigKey(ConfigurationKeys.unitBuildMemoryMiB), default: 4096)
        guard outputMiB >= 1 else { throw ConfigurationError(key: ConfigurationKeys.unitMaxOutputMiB, message: "\(outputMiB); use 1 MiB or more") }
        guard buildMiB >= 256 else { throw ConfigurationError(key: ConfigurationKeys.unitBuildMemoryMiB, message: "\(buildMiB); installing needs 256 MiB or more") }
        self.init(
            mode: mode, jobUser: reader.string(forKey: ConfigKey(ConfigurationKeys.unitJobUser), default: "ferry-job"),
            buildUser: reader.string(forKey: ConfigKey(ConfigurationKeys.unitBuildUser), default: "ferry-build"),
            maxProcesses: reader.int(forKey: ConfigKey(ConfigurationKeys.unitMaxProcesses), default: 256),
            maxOutputBytes: UInt64(outputMiB) << 20,
            maxOutputFiles: reader.int(forKey: ConfigKey(ConfigurationKeys.unitMaxOutputFiles), default: 100_000),
            buildMemoryBytes: UInt64(buildMiB) << 20
        )
        guard maxProcesses >= 8 else { throw ConfigurationError(key: ConfigurationKeys.unitMaxProcesses, message: "\(maxProcesses) is too few for Python; use 8 or more") }
        guard maxOutputFiles >= 16 else { throw ConfigurationError(key: ConfigurationKeys.unitMaxOutputFiles, message: "\(maxOutputFiles); use 16 or more") }
        guard jobUser != buildUser else { throw ConfigurationError(key: ConfigurationKeys.unitBuildUser, message: "\(buildUser) is also the job user; builds need a user of their own") }
    }
}

/// The sandbox, checked once at start: the tools, the job and build users, the cgroups and the
/// seccomp filter it needs.
struct Sandbox: Sendable {
    static let bubblewrap = "/usr/bin/bwrap", setpriv = "/usr/bin/setpriv", prlimit = "/usr/bin/prlimit"
    typealias Account = (uid: uid_t, gid: gid_t)

    let settings: SandboxSettings
    /// Who jobs run as.
    let user: Account
    /// Who environments are built as.
    let builder: Account
    let cgroups: JobCgroup.Version?
    /// The compiled seccomp filter (`SyscallPolicy`), read by bubblewrap from descriptor 3.
    let syscallFilter: [UInt8]

    /// Checks that jobs can be contained, or throws a `ConfigurationError` that says what is missing
    /// and how to fix it (the unit then refuses to start).
    static func prepare(_ settings: SandboxSettings, python: String, sandboxRoot: String) async throws -> Sandbox {
        guard settings.mode == .bubblewrap else {
            return Sandbox(settings: settings, user: (getuid(), getgid()), builder: (getuid(), getgid()), cgroups: nil, syscallFilter: [])
        }
        let optOut = "or set FERRY_UNIT_SANDBOX=none to run jobs without isolation (only where every user is trusted)"
        for tool in [bubblewrap, setpriv, prlimit] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "\(tool) is missing; install bubblewrap and util-linux (apt-get install bubblewrap util-linux), \(optOut)")
        }
        guard geteuid() == 0 else {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "the processing unit must run as root to start jobs as the job user \(settings.jobUser) and to limit them with cgroups, \(optOut)")
        }
        guard SpawnExtensions.available else {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "this C library cannot close the unit's descriptors in a job (glibc 2.34 or later is needed), \(optOut)")
        }
        let user = try account(settings.jobUser, key: ConfigurationKeys.unitJobUser, optOut: optOut)
        let builder = try account(settings.buildUser, key: ConfigurationKeys.unitBuildUser, optOut: optOut)
        guard user.uid != builder.uid else {
            throw ConfigurationError(key: ConfigurationKeys.unitBuildUser, message: "\(settings.buildUser) and the job user \(settings.jobUser) are the same account; builds need one of their own")
        }
        let cgroups: JobCgroup.Version
        switch JobCgroup.detect() {
        case .success(let version): cgroups = version
        case .failure(let error):
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "jobs cannot be limited: \(error); run the unit as root with cgroups mounted (in a container: a writable cgroup), \(optOut)")
        }
        let filter: [UInt8]
        do {
            filter = try SyscallPolicy.compile()
        } catch {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "the seccomp filter for jobs cannot be built: \(error), \(optOut)")
        }
        let sandbox = Sandbox(settings: settings, user: user, builder: builder, cgroups: cgroups, syscallFilter: filter)
        try await sandbox.probe(python: python, sandboxRoot: sandboxRoot, optOut: optOut)
        return sandbox
    }

    private static func account(_ name: String, key: String, optOut: String) throws -> Account {
        // getpwnam_r: getpwnam's answer lives in static storage that another thread's look-up overwrites.
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else {
            throw ConfigurationError(key: key, message: "the user \(name) does not exist; create it (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin \(name)), \(optOut)")
        }
        let account = (entry.pw_uid, entry.pw_gid)
        guard account.0 != 0, account.0 != getuid() else {
            throw ConfigurationError(key: key, message: "\(name) is Ferry's own user or root; the sandbox needs an unprivileged user of its own")
        }
        return account
    }

    /// Runs Python once in the sandbox, as a job would run, so that a unit that cannot contain its
    /// jobs says so at start rather than failing every job.
    private func probe(python: String, sandboxRoot: String, optOut: String) async throws {
        // A name of its own: units in containers share the sandbox volume and often the process id.
        let work = sandboxRoot + "/work/.sandbox-probe-\(UUID().uuidString.lowercased())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        guard lchown(work, user.uid, user.gid) == 0 else {
            throw ConfigurationError(key: ConfigurationKeys.unitSandbox, message: "cannot give \(work) to \(settings.jobUser): \(String(cString: strerror(errno)))")
        }
        let log = work + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let command = jobCommand(
            python: python, arguments: ["-c", "import os; print('sandbox ok', os.getuid())"], readOnly: [], work: work, project: work,
            limits: JobSandboxLimits(memoryBytes: 256 << 20, cpuSeconds: 30), cgroup: nil
        )
        let outcome = try await command.run(environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], standardOutput: log, standardError: log, timeout: .seconds(30))
        let output = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard outcome.exitCode == 0, output == "sandbox ok \(user.uid)" else {
            throw ConfigurationError(
                key: ConfigurationKeys.unitSandbox,
                message: "a test job could not run in the sandbox (\(output.isEmpty ? "exit \(outcome.exitCode)" : output)). The job user \(settings.jobUser) must be able to reach \(python) and the unit's sandbox root (\(sandboxRoot), unit.sandbox-root: every folder above it must let others pass); user namespaces must be allowed (in a container: seccomp and AppArmor must permit them), \(optOut)"
            )
        }
    }

    /// The program and arguments that run `python code.py` for a job, contained as described above.
    /// `project` is the job's project folder inside `work`; `cgroup` is the job's group.
    /// `readOnly` folders are bound at their own paths (the job's Python environment).
    func jobCommand(
        python: String, arguments: [String] = ["code.py"], readOnly: [String], work: String, project: String, limits: JobSandboxLimits, cgroup: JobCgroup?
    ) -> SandboxedCommand {
        guard settings.mode == .bubblewrap else {
            return SandboxedCommand(executable: python, arguments: arguments, directory: project, passing: [])
        }
        let bwrap = jobBubblewrap(python: python, arguments: arguments, readOnly: readOnly, work: work, project: project, tmpBytes: limits.memoryBytes)
        return launch(as: user, cpuSeconds: limits.cpuSeconds, fileBytes: settings.maxOutputBytes, bwrap: bwrap, cgroup: cgroup)
    }

    /// bubblewrap around `python code.py`, with the seccomp filter on descriptor 3: the job's file
    /// system and namespaces, on this host or on a cluster's node.
    func jobBubblewrap(python: String, arguments: [String] = ["code.py"], readOnly: [String], work: String, project: String, tmpBytes: UInt64) -> [String] {
        // Inside the sandbox the work folder is /job, so paths say nothing about the host.
        let inside = "/job" + project.dropFirst(work.count)
        var bwrap = baseArguments(network: false, tmpBytes: tmpBytes)
        for folder in readOnly { bwrap += ["--ro-bind", folder, folder] }
        bwrap += pythonBinds
        bwrap += ["--bind", work, "/job", "--chdir", inside, "--", python] + arguments
        return bwrap
    }

    /// The program that builds an environment: `program` as the build user with network, in a file
    /// system of `/usr`, the network's configuration, `readOnly` (certificates, local wheel folders)
    /// and only two writable folders: `target.host`, seen at `target.inside` (where the environment
    /// will live, since its scripts name their interpreter by path), and a private download cache at
    /// `/build/cache`. Nothing of Ferry's volume, no other environment and none of the unit's secrets
    /// are there. `files` are placed read-only at their paths inside.
    func buildCommand(
        program: [String], target: (host: String, inside: String), cache: String, readOnly: [String], files: [(bytes: [UInt8], path: String)] = [], cgroup: JobCgroup?
    ) -> SandboxedCommand {
        guard settings.mode == .bubblewrap else {
            return SandboxedCommand(executable: program[0], arguments: Array(program.dropFirst()), directory: "/", passing: [])
        }
        var bwrap = baseArguments(network: true, tmpBytes: 1 << 30)
        for file in ["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/pki"] {
            bwrap += ["--ro-bind-try", file, file]
        }
        for path in readOnly where !path.hasPrefix("/usr/") && !path.hasPrefix("/etc/ssl/") {
            bwrap += ["--ro-bind-try", path, path]
        }
        bwrap += pythonBinds
        bwrap += ["--bind", target.host, target.inside, "--bind", cache, "/build/cache"]
        // Descriptor 3 is the seccomp filter; the files follow it.
        for (offset, file) in files.enumerated() { bwrap += ["--ro-bind-data", "\(4 + offset)", file.path] }
        bwrap += ["--chdir", "/tmp", "--"] + program
        var command = launch(as: builder, cpuSeconds: 3 * 3600, fileBytes: 8 << 30, bwrap: bwrap, cgroup: cgroup)
        command.passing += files.map(\.bytes)
        return command
    }

    /// What every sandbox shares: every namespace new (the network's only for builds), no way to
    /// make more, the seccomp filter, `/usr` read-only, a private `/proc`, `/dev` and `/tmp`.
    private func baseArguments(network: Bool, tmpBytes: UInt64) -> [String] {
        [Self.bubblewrap, "--unshare-all", "--unshare-user"] + (network ? ["--share-net"] : []) + [
            "--disable-userns", "--die-with-parent", "--new-session", "--seccomp", "3",
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--ro-bind-try", "/etc/localtime", "/etc/localtime",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            "--proc", "/proc", "--dev", "/dev",
            "--size", "\(tmpBytes)", "--tmpfs", "/tmp",
        ]
    }

    /// The interpreter's own folder when it lives outside /usr.
    private var pythonBinds: [String] {
        guard let prefix = settings.pythonPrefix, prefix != "/usr", !prefix.hasPrefix("/usr/") else { return [] }
        return ["--ro-bind", prefix, prefix]
    }

    /// The launcher: joins the cgroup before anything else runs, sets the rlimits, becomes `account`
    /// without capabilities, then starts bubblewrap with the seccomp filter on descriptor 3.
    private func launch(as account: Account, cpuSeconds: Int, fileBytes: UInt64, bwrap: [String], cgroup: JobCgroup?) -> SandboxedCommand {
        let join = cgroup?.processFiles ?? []
        let script = #"for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@""#
        let limited = Self.limits(cpuSeconds: cpuSeconds, fileBytes: fileBytes) + Self.becoming(account)
        return SandboxedCommand(executable: "/bin/sh", arguments: ["-c", script, "ferry-sandbox"] + join + ["--"] + limited + bwrap, directory: "/", passing: [syscallFilter])
    }

    /// prlimit: CPU seconds per process (SIGXCPU at the soft limit, SIGKILL a little later), the
    /// size of any one file, no core dumps.
    private static func limits(cpuSeconds: Int, fileBytes: UInt64) -> [String] {
        [prlimit, "--cpu=\(cpuSeconds):\(cpuSeconds + 5)", "--fsize=\(fileBytes)", "--core=0", "--"]
    }

    /// setpriv: become `account`, without groups, capabilities or a way to gain privileges.
    private static func becoming(_ account: Account) -> [String] {
        [
            setpriv, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--",
        ]
    }

    /// The command line a cluster's batch script runs for `python code.py` on a node: the same
    /// rlimits, the job user (when the script starts as root) and, with `contained`, the same
    /// bubblewrap and seccomp filter (which the script opens on descriptor 3) as on the unit. The
    /// node's scheduler holds the job in a cgroup of its own with its memory limit.
    func clusterCommand(
        python: String, readOnly: [String], work: String, project: String, limits: JobSandboxLimits, contained: Bool, asRoot: Bool
    ) -> [String] {
        let user = asRoot && settings.mode == .bubblewrap ? Self.becoming(self.user) : []
        let run = contained
            ? jobBubblewrap(python: python, readOnly: readOnly, work: work, project: project, tmpBytes: limits.memoryBytes)
            : [python, "code.py"]
        return Self.limits(cpuSeconds: limits.cpuSeconds, fileBytes: settings.maxOutputBytes) + user + run
    }

    /// The environment of `code.py`: nothing of the unit's own.
    /// A run of a sweep also gets its parameters (`FERRY_PARAM_<NAME>`), its index and its sweep.
    func environment(for jobID: String, sweep: SweepRun? = nil, pythonEnvironment: String, work: String, sandboxed: Bool? = nil) -> [String: String] {
        let sandboxed = sandboxed ?? (settings.mode == .bubblewrap)
        let own = [
            "PATH": pythonEnvironment + "/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": sandboxed ? "/tmp" : work, "TMPDIR": sandboxed ? "/tmp" : work,
            "USER": settings.jobUser, "LOGNAME": settings.jobUser,
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "FERRY_JOB_ID": jobID,
        ]
        return own.merging(sweep?.environment ?? [:]) { ferry, _ in ferry }
    }
}

/// A program the sandbox prepared, with what it must be handed (the seccomp filter on descriptor 3).
struct SandboxedCommand: Sendable {
    var executable: String
    var arguments: [String]
    var directory: String?
    var passing: [[UInt8]]

    func childRun(environment: [String: String], standardOutput: String, standardError: String, timeout: Duration?) -> ChildRun {
        var run = ChildRun(
            executable: executable, arguments: arguments, directory: directory, environment: environment,
            standardOutput: standardOutput, standardError: standardError, timeout: timeout
        )
        run.passing = passing
        return run
    }

    func run(environment: [String: String], standardOutput: String, standardError: String, timeout: Duration?) async throws -> ChildRun.Outcome {
        try await childRun(environment: environment, standardOutput: standardOutput, standardError: standardError, timeout: timeout).run()
    }
}

/// The limits of one job as the sandbox applies them.
struct JobSandboxLimits: Sendable {
    var memoryBytes: UInt64
    var cpuSeconds: Int
}

extension Sandbox {
    /// Jobs run as the unit's own user without isolation (`unit.sandbox=none`, and router tests).
    static var unsandboxed: Sandbox {
        Sandbox(settings: SandboxSettings(mode: .none), user: (getuid(), getgid()), builder: (getuid(), getgid()), cgroups: nil, syscallFilter: [])
    }
}
