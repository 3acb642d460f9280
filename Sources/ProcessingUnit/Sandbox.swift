import Configuration
import FerryService
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How `code.py` is contained. With `bubblewrap` (the default) every job runs:
/// - as the unprivileged job user (`unit.job-user`, default `ferry-job`), never as Ferry's own user,
///   with no capabilities and `no_new_privs` (setpriv);
/// - in new user, mount, PID, network, IPC and UTS namespaces (bubblewrap): no network at all (only
///   its own empty loopback), its own process tree, and a file system of `/usr` read-only, its
///   environment read-only, a private size-limited `/tmp` and its own work folder, nothing else of
///   the volume (other jobs, the database, configuration);
/// - in a cgroup of its own with its memory and process-count limits, and with rlimits for CPU time
///   and file size (prlimit); its output is watched against the output limit while it runs.
/// `none` runs jobs as the unit's own user without any of this; the operator must opt in to it and
/// every job logs a warning.
struct SandboxSettings: Sendable {
    enum Mode: String, Sendable { case bubblewrap, none }

    var mode: Mode
    var jobUser: String
    /// Processes (and threads) a job may have at once.
    var maxProcesses: Int
    /// Bytes a job may write: its work folder and its logs together, and any single file.
    var maxOutputBytes: UInt64
    /// Folders the interpreter lives in outside /usr (a pyenv or uv Python), bound read-only.
    var pythonPrefix: String?

    init(mode: Mode = .none, jobUser: String = "ferry-job", maxProcesses: Int = 256, maxOutputBytes: UInt64 = 10 << 30, pythonPrefix: String? = nil) {
        self.mode = mode
        self.jobUser = jobUser
        self.maxProcesses = maxProcesses
        self.maxOutputBytes = maxOutputBytes
        self.pythonPrefix = pythonPrefix
    }

    init(reader: ConfigReader) throws {
        let name = reader.string(forKey: "unit.sandbox", default: Mode.bubblewrap.rawValue)
        guard let mode = Mode(rawValue: name) else {
            throw ConfigurationError(key: "unit.sandbox", message: "\(name) is not a sandbox; use bubblewrap, or none to run jobs without isolation")
        }
        self.init(
            mode: mode, jobUser: reader.string(forKey: "unit.job-user", default: "ferry-job"),
            maxProcesses: reader.int(forKey: "unit.max-processes", default: 256),
            maxOutputBytes: UInt64(reader.int(forKey: "unit.max-output-mib", default: 10_240)) << 20
        )
        guard maxProcesses >= 8 else { throw ConfigurationError(key: "unit.max-processes", message: "\(maxProcesses) is too few for Python; use 8 or more") }
        guard maxOutputBytes >= 1 << 20 else { throw ConfigurationError(key: "unit.max-output-mib", message: "use 1 MiB or more") }
    }
}

/// The sandbox, checked once at start: the tools, the job user and the cgroups it needs.
struct Sandbox: Sendable {
    static let bubblewrap = "/usr/bin/bwrap", setpriv = "/usr/bin/setpriv", prlimit = "/usr/bin/prlimit"

    let settings: SandboxSettings
    let user: (uid: uid_t, gid: gid_t)
    let cgroups: JobCgroup.Version?

    /// Checks that jobs can be contained, or throws a `ConfigurationError` that says what is missing
    /// and how to fix it (the unit then refuses to start).
    static func prepare(_ settings: SandboxSettings, python: String, dataDirectory: String) async throws -> Sandbox {
        guard settings.mode == .bubblewrap else {
            return Sandbox(settings: settings, user: (getuid(), getgid()), cgroups: nil)
        }
        let optOut = "or set FERRY_UNIT_SANDBOX=none to run jobs without isolation (only where every user is trusted)"
        for tool in [bubblewrap, setpriv, prlimit] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ConfigurationError(key: "unit.sandbox", message: "\(tool) is missing; install bubblewrap and util-linux (apt-get install bubblewrap util-linux), \(optOut)")
        }
        guard geteuid() == 0 else {
            throw ConfigurationError(key: "unit.sandbox", message: "the processing unit must run as root to start jobs as the job user \(settings.jobUser) and to limit them with cgroups, \(optOut)")
        }
        guard let entry = getpwnam(settings.jobUser) else {
            throw ConfigurationError(key: "unit.job-user", message: "the user \(settings.jobUser) does not exist; create it (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin \(settings.jobUser)), \(optOut)")
        }
        let user = (entry.pointee.pw_uid, entry.pointee.pw_gid)
        guard user.0 != 0, user.0 != getuid() else {
            throw ConfigurationError(key: "unit.job-user", message: "\(settings.jobUser) is Ferry's own user or root; jobs need a user of their own")
        }
        let cgroups: JobCgroup.Version
        switch JobCgroup.detect() {
        case .success(let version): cgroups = version
        case .failure(let error):
            throw ConfigurationError(key: "unit.sandbox", message: "jobs cannot be limited: \(error); run the unit as root with cgroups mounted (in a container: a writable cgroup), \(optOut)")
        }
        let sandbox = Sandbox(settings: settings, user: user, cgroups: cgroups)
        try await sandbox.probe(python: python, dataDirectory: dataDirectory, optOut: optOut)
        return sandbox
    }

    /// Runs Python once in the sandbox, as a job would run, so that a unit that cannot contain its
    /// jobs says so at start rather than failing every job.
    private func probe(python: String, dataDirectory: String, optOut: String) async throws {
        let work = dataDirectory + "/jobs/.sandbox-probe-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        guard lchown(work, user.uid, user.gid) == 0 else {
            throw ConfigurationError(key: "unit.sandbox", message: "cannot give \(work) to \(settings.jobUser): \(String(cString: strerror(errno)))")
        }
        let log = dataDirectory + "/jobs/.sandbox-probe-\(getpid()).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let command = command(
            python: python, arguments: ["-c", "import os; print('sandbox ok', os.getuid())"], readOnly: [], work: work, project: work,
            limits: JobSandboxLimits(memoryBytes: 256 << 20, cpuSeconds: 30), cgroup: nil
        )
        let outcome = try await ChildRun(
            executable: command.executable, arguments: command.arguments, directory: command.directory,
            environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], standardOutput: log, standardError: log, timeout: .seconds(30)
        ).run()
        let output = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard outcome.exitCode == 0, output == "sandbox ok \(user.uid)" else {
            throw ConfigurationError(
                key: "unit.sandbox",
                message: "a test job could not run in the sandbox (\(output.isEmpty ? "exit \(outcome.exitCode)" : output)). The job user \(settings.jobUser) must be able to reach \(python) and FERRY_DATA_DIR (\(dataDirectory)); user namespaces must be allowed (in a container: seccomp and AppArmor must permit them), \(optOut)"
            )
        }
    }

    /// The program and arguments that run `python code.py` for a job, contained as described above.
    /// `project` is the job's project folder inside `work`; `cgroup` is the job's group.
    /// `readOnly` folders are bound at their own paths (the job's Python environment).
    func command(
        python: String, arguments: [String] = ["code.py"], readOnly: [String], work: String, project: String, limits: JobSandboxLimits, cgroup: JobCgroup?
    ) -> (executable: String, arguments: [String], directory: String?) {
        guard settings.mode == .bubblewrap else {
            return (python, arguments, project)
        }
        // Inside the sandbox the work folder is /job, so paths say nothing about the host.
        let inside = "/job" + project.dropFirst(work.count)
        var bwrap = [
            Self.bubblewrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--ro-bind-try", "/etc/localtime", "/etc/localtime",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            "--proc", "/proc", "--dev", "/dev",
            "--size", "\(limits.memoryBytes)", "--tmpfs", "/tmp",
        ]
        for folder in readOnly { bwrap += ["--ro-bind", folder, folder] }
        if let prefix = settings.pythonPrefix, prefix != "/usr", !prefix.hasPrefix("/usr/") {
            bwrap += ["--ro-bind", prefix, prefix]
        }
        bwrap += ["--bind", work, "/job", "--chdir", inside, "--", python] + arguments
        let setpriv = [
            Self.setpriv, "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--",
        ]
        // CPU seconds per process: SIGXCPU at the soft limit, SIGKILL a little later.
        let prlimit = [
            Self.prlimit, "--cpu=\(limits.cpuSeconds):\(limits.cpuSeconds + 5)", "--fsize=\(settings.maxOutputBytes)", "--core=0", "--",
        ]
        // The launcher joins the job's cgroup before anything of the job runs, then becomes the job.
        let join = cgroup?.processFiles ?? []
        let script = #"for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@""#
        return ("/bin/sh", ["-c", script, "ferry-job"] + join + ["--"] + prlimit + setpriv + bwrap, nil)
    }

    /// The environment of `code.py`: nothing of the unit's own.
    func environment(for jobID: String, pythonEnvironment: String, work: String) -> [String: String] {
        let sandboxed = settings.mode == .bubblewrap
        return [
            "PATH": pythonEnvironment + "/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": sandboxed ? "/tmp" : work, "TMPDIR": sandboxed ? "/tmp" : work,
            "USER": settings.jobUser, "LOGNAME": settings.jobUser,
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "FERRY_JOB_ID": jobID,
        ]
    }
}

/// The limits of one job as the sandbox applies them.
struct JobSandboxLimits: Sendable {
    var memoryBytes: UInt64
    var cpuSeconds: Int
}

extension Sandbox {
    /// Jobs run as the unit's own user without isolation (`unit.sandbox=none`, and router tests).
    static var unsandboxed: Sandbox { Sandbox(settings: SandboxSettings(mode: .none), user: (getuid(), getgid()), cgroups: nil) }
}
