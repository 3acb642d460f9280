import Configuration
import FerryBundle
import FerryContracts
import FerryService
import Foundation

/// Where a ProcessingUnit keeps its files and how it prepares Python.
struct UnitSettings: Sendable {
    var dataDirectory: String
    var python: String
    /// `uv` when it is installed (ten times faster than venv + pip), else nil.
    var uv: String?
    /// The package index environments install from, whatever a bundle says; nil uses pip's default.
    var packageIndex: String?
    /// Whether packages without a wheel may be built from source. Building runs the package's own
    /// setup code in the unit, so it is off: environments are made of wheels only.
    var allowSourceBuilds = false
    /// Extraction checks the bundle again with the same limits as the Backend's upload check.
    var bundleLimits = BundleLimits()
    var name: String
    /// How long a finished job's work folder stays for debugging (0: removed as soon as the job ends).
    var keepWorkSeconds: Int = 0
    /// Below this much free space on the shared volume the unit starts no job (it waits in the queue).
    var minFreeBytes: Int64 = 1 << 30

    /// The unit's own folder for what sandboxes must reach (work folders, environments), apart from
    /// the shared volume: the job and build users pass through it (0711) and never through the
    /// operator's folders, so FERRY_DATA_DIR can be anywhere and closed to them (`unit.sandbox-root`).
    var sandboxRoot: String
    /// The shared volume's owner when the unit must hand its folders there to it (see VolumeOwner).
    var volumeOwner: VolumeOwner?

    /// Where code.py runs: on this machine, or as a job of the lab's Slurm cluster.
    enum Executor: String, Sendable { case local, slurm }
    var executor: Executor = .local

    init(dataDirectory: String, python: String = "python3", uv: String? = nil, packageIndex: String? = nil, name: String = "unit", sandboxRoot: String? = nil) {
        self.dataDirectory = dataDirectory
        self.sandboxRoot = sandboxRoot ?? dataDirectory + "/unit"
        self.python = python
        self.uv = uv
        self.packageIndex = packageIndex
        self.name = name
    }

    init(reader: ConfigReader, port: Int) throws {
        guard let data = reader.string(forKey: ConfigKey(ConfigurationKeys.dataDirectory)) else {
            throw ConfigurationError(key: ConfigurationKeys.dataDirectory, message: "is required: the shared volume with bundles, jobs and results")
        }
        dataDirectory = data
        sandboxRoot = reader.string(forKey: ConfigKey(ConfigurationKeys.unitSandboxRoot), default: geteuid() == 0 ? "/var/lib/ferry-unit" : data + "/unit")
        guard sandboxRoot.hasPrefix("/") else { throw ConfigurationError(key: ConfigurationKeys.unitSandboxRoot, message: "\(sandboxRoot) is not an absolute path") }
        python = reader.string(forKey: ConfigKey(ConfigurationKeys.pythonPath), default: "python3")
        let uvSetting = reader.string(forKey: ConfigKey(ConfigurationKeys.pythonUV), default: "auto")
        // `auto` prefers uv under /usr, the only place a sandboxed build can run it from.
        let installed = ["/usr/local/bin/uv", "/usr/bin/uv"].first { FileManager.default.isExecutableFile(atPath: $0) }
        uv = uvSetting == "off" ? nil : (uvSetting == "auto" ? installed ?? Self.find("uv") : uvSetting)
        packageIndex = reader.string(forKey: ConfigKey(ConfigurationKeys.pythonIndex))
        allowSourceBuilds = reader.bool(forKey: ConfigKey(ConfigurationKeys.pythonAllowSourceBuilds), default: false)
        bundleLimits = try BundleLimits(reader: reader)
        keepWorkSeconds = reader.int(forKey: ConfigKey(ConfigurationKeys.unitKeepWorkSeconds), default: 0)
        minFreeBytes = Int64(reader.int(forKey: ConfigKey(ConfigurationKeys.unitMinFreeMiB), default: 1024)) << 20
        guard keepWorkSeconds >= 0 else { throw ConfigurationError(key: ConfigurationKeys.unitKeepWorkSeconds, message: "\(keepWorkSeconds); use 0 (remove at once) or more seconds") }
        name = reader.string(forKey: ConfigKey(ConfigurationKeys.unitName), default: "\(ProcessInfo.processInfo.hostName):\(port)")
        let executorName = reader.string(forKey: ConfigKey(ConfigurationKeys.unitExecutor), default: Executor.local.rawValue)
        guard let executor = Executor(rawValue: executorName) else {
            throw ConfigurationError(key: ConfigurationKeys.unitExecutor, message: "\(executorName.prefix(64)) is not an executor; use local (this machine) or slurm (the lab's cluster)")
        }
        self.executor = executor
    }

    /// The first executable `name` on PATH.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    var bundles: String { dataDirectory + "/bundles" }
    var jobs: String { dataDirectory + "/jobs" }
    var results: String { dataDirectory + "/results" }
    /// Environments, cached by requirements hash (the units of one machine share them).
    var environments: String { sandboxRoot + "/envs" }
    /// Jobs' work folders while they run: the extracted bundle and what the job writes.
    var workFolders: String { sandboxRoot + "/work" }

    func work(of jobID: String) -> String { workFolders + "/" + jobID }
}
