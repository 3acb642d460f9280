import Configuration
import FerryContracts
import Foundation

/// A cluster's batch scheduler as the unit uses it: submit a job, ask for the states of the jobs it
/// submitted, cancel one, and find one by name (to adopt what a unit submitted before it restarted).
/// Slurm through its command-line tools (`SlurmScheduler`) is the one there is; slurmrestd or another
/// scheduler fits behind the same four calls, and nothing of any scheduler's own types passes them.
protocol BatchScheduler: Sendable {
    /// Submits the job and answers the scheduler's id for it.
    func submit(_ job: BatchJob) async throws -> String
    /// The states of the given jobs; a job the scheduler does not know (any more) is left out.
    func states(of ids: [String]) async throws -> [String: BatchJobState]
    func cancel(_ id: String) async throws
    /// The id of the newest job of this name, if the scheduler knows one.
    func find(named name: String) async throws -> String?
    /// Lets a held job (an array's task, `BatchJob.array`) go to the queue; one already let go is no error.
    func release(_ id: String) async throws
}

/// One job for the scheduler: a batch script and what it asks for.
struct BatchJob: Sendable, Equatable {
    var name: String
    /// The batch script itself (handed to the scheduler, never left as a file the job could change).
    var script: String
    var workingDirectory: String
    var standardOutput: String
    var standardError: String
    var cpus: Int
    var memoryMiB: Int
    /// Whole minutes: the scheduler's own backstop; the unit enforces the exact limit itself.
    var timeLimitMinutes: Int
    var partition: String?
    var account: String?
    var qos: String?
    /// A job array of `tasks` tasks (ids `<id>_1` … `<id>_<tasks>`), at most `throttle` running at
    /// once, every task held until `release`d; nil for one job.
    var array: BatchArray?
}

/// One submission for many runs: a sweep on the Slurm executor (`SweepArray`).
struct BatchArray: Sendable, Equatable {
    var tasks: Int
    var throttle: Int
}

/// Where a job is in the scheduler, in Ferry's terms.
enum BatchJobState: Sendable, Equatable {
    /// Waiting for its turn; `reason` is the scheduler's own word for why (Priority, Resources…).
    case pending(reason: String)
    case running(since: Date?)
    case ended(BatchJobEnd)
}

/// How a job ended on the cluster.
struct BatchJobEnd: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// The script ran to its end; its exit code says how code.py did.
        case exited
        /// The scheduler's time limit ended it.
        case timedOut
        /// The job went past its memory and the kernel killed it.
        case outOfMemory
        case canceled
        /// The cluster failed, not the job (a node died, could not boot, or the job was preempted):
        /// worth submitting again. The scheduler's state names which.
        case infrastructure(String)
    }

    var kind: Kind
    var exitCode: Int32
    /// The signal that ended the script, if one did.
    var signal: Int32?
    var startedAt: Date?
    var endedAt: Date?
}

/// Where the unit sends jobs and how (`unit.executor`, `slurm.*`).
struct ClusterSettings: Sendable {
    enum Sandbox: String, Sendable { case bubblewrap, none }

    var partition: String?
    var account: String?
    var qos: String?
    var cpus: Int = 1
    /// Whether the nodes run code.py in bubblewrap (unprivileged user namespaces), as the unit does.
    var sandbox: Sandbox = .bubblewrap
    /// How often the unit asks the scheduler about its jobs.
    var pollInterval: Duration = .seconds(5)
    /// How often a job the cluster failed (not the job itself) is submitted again before it ends `error`.
    var retries: Int = 2

    init(partition: String? = nil, account: String? = nil, qos: String? = nil, cpus: Int = 1, sandbox: Sandbox = .bubblewrap, pollInterval: Duration = .seconds(5), retries: Int = 2) {
        self.partition = partition
        self.account = account
        self.qos = qos
        self.cpus = cpus
        self.sandbox = sandbox
        self.pollInterval = pollInterval
        self.retries = retries
    }

    init(reader: ConfigReader) throws {
        func name(_ key: String) throws -> String? {
            guard let value = reader.string(forKey: ConfigKey(key)), !value.isEmpty else { return nil }
            // Slurm's names (partitions, accounts, QOS) are words; nothing else reaches sbatch's arguments.
            guard value.count <= 64, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw ConfigurationError(key: key, message: "\(value.prefix(64)) is not a Slurm name; use letters, digits, '-', '_' and '.'")
            }
            return value
        }
        partition = try name(ConfigurationKeys.slurmPartition)
        account = try name(ConfigurationKeys.slurmAccount)
        qos = try name(ConfigurationKeys.slurmQOS)
        cpus = reader.int(forKey: ConfigKey(ConfigurationKeys.slurmCPUs), default: 1)
        guard (1...1024).contains(cpus) else { throw ConfigurationError(key: ConfigurationKeys.slurmCPUs, message: "\(cpus) CPUs; use 1-1024") }
        let sandboxName = reader.string(forKey: ConfigKey(ConfigurationKeys.slurmSandbox), default: Sandbox.bubblewrap.rawValue)
        guard let sandbox = Sandbox(rawValue: sandboxName) else {
            throw ConfigurationError(key: ConfigurationKeys.slurmSandbox, message: "\(sandboxName) is not a sandbox for the nodes; use bubblewrap, or none where the nodes do not allow user namespaces")
        }
        self.sandbox = sandbox
        let poll = reader.double(forKey: ConfigKey(ConfigurationKeys.slurmPollSeconds), default: 5)
        guard poll >= 0.5, poll <= 300 else { throw ConfigurationError(key: ConfigurationKeys.slurmPollSeconds, message: "\(poll) s; use 0.5-300 seconds") }
        pollInterval = .milliseconds(Int(poll * 1000))
        retries = reader.int(forKey: ConfigKey(ConfigurationKeys.slurmRetries), default: 2)
        guard (0...10).contains(retries) else { throw ConfigurationError(key: ConfigurationKeys.slurmRetries, message: "\(retries); use 0-10 submissions again") }
    }
}
