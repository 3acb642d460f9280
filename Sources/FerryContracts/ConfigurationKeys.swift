/// Configuration keys shared by the services. Each is read through swift-configuration, so the key
/// `http.port` is `--http-port` on the command line and `FERRY_HTTP_PORT` in the environment.
public enum ConfigurationKeys {
    /// The prefix of every environment variable Ferry reads (`FERRY_...`).
    public static let environmentPrefix = "ferry"

    /// Address the service's HTTP server binds to.
    public static let httpHost = "http.host"
    /// Port the service's HTTP server listens on.
    public static let httpPort = "http.port"
    /// Log level: trace, debug, info, notice, warning, error, critical.
    public static let logLevel = "log.level"
    /// RabbitMQ URL, `amqp://user:password@host:port/vhost`.
    public static let amqpURL = "amqp.url"
    /// Heartbeat interval in seconds negotiated with the broker.
    public static let amqpHeartbeatSeconds = "amqp.heartbeat"
    /// Seconds the broker may take to accept a publish, acknowledgement or heartbeat before the
    /// connection is ended (and opened again).
    public static let amqpSendTimeoutSeconds = "amqp.send-timeout"
    /// The shared volume: bundles, job folders, results and environments.
    public static let dataDirectory = "data.dir"
    /// The Backend's base URL, for the Frontend's proxy.
    public static let backendURL = "backend.url"
    /// The Producer's base URL, for the Backend.
    public static let producerURL = "producer.url"
    /// The ProcessingUnit's base URL, for its Consumer.
    public static let unitURL = "unit.url"
    /// Jobs a ProcessingUnit runs at once, and so its Consumer's prefetch count.
    public static let unitSlots = "unit.slots"
    /// Where the Backend reaches a Consumer when it cannot reach the Consumer's unit (compose's
    /// separate networks): the unit is then reported as `<consumer.url>/unit`, whose health the
    /// Consumer answers for.
    public static let consumerURL = "consumer.url"

    // MARK: Accounts and sign-in (Backend) (each explained in the README's configuration table)

    public static let authAdmins = "auth.admins"
    public static let authBcryptCost = "auth.bcrypt-cost"
    public static let authRegistration = "auth.registration"

    // MARK: The Backend (each explained in the README's configuration table)

    public static let backendFileThreads = "backend.file-threads"
    public static let backendSweepAge = "backend.sweep-age"
    public static let backendSweepInterval = "backend.sweep-interval"
    public static let backendTrustedProxies = "backend.trusted-proxies"
    /// The most runs one sweep may have.
    public static let sweepsMaxRuns = "sweeps.max-runs"
    /// Runs of a sweep at once when the researcher gives no throttle; they may give any up to the sweep's size.
    public static let sweepsDefaultThrottle = "sweeps.default-throttle"
    public static let backendWaitNoticeSeconds = "backend.wait-notice-seconds"

    // MARK: The Backend's SQLite database (each explained in the README's configuration table)

    public static let databasePath = "database.path"

    // MARK: The Frontend's proxy (each explained in the README's configuration table)

    public static let frontendIdleTimeout = "frontend.idle-timeout"
    public static let frontendTransferTimeout = "frontend.transfer-timeout"

    // MARK: The services' shared secret for internal calls (each explained in the README's configuration table)

    public static let internalToken = "internal.token"
    public static let internalTokenFile = "internal.token-file"

    // MARK: Limits on uploads, bundles, jobs and each account (each explained in the README's configuration table)

    public static let limitsBundleCompressionRatio = "limits.bundle-compression-ratio"
    public static let limitsBundleEntries = "limits.bundle-entries"
    public static let limitsBundleUncompressedMiB = "limits.bundle-uncompressed-mib"
    public static let limitsMemoryDefault = "limits.memory-default"
    public static let limitsMemoryMax = "limits.memory-max"
    public static let limitsTimeDefault = "limits.time-default"
    public static let limitsTimeMax = "limits.time-max"
    public static let limitsUploadBytes = "limits.upload-bytes"
    public static let limitsUserActiveJobs = "limits.user-active-jobs"
    public static let limitsUserStorageMiB = "limits.user-storage-mib"
    public static let limitsUserUploadsPerMinute = "limits.user-uploads-per-minute"

    // MARK: Python and its package index (ProcessingUnit) (each explained in the README's configuration table)

    public static let pythonAllowSourceBuilds = "python.allow-source-builds"
    public static let pythonIndex = "python.index"
    public static let pythonPath = "python.path"
    public static let pythonUV = "python.uv"

    // MARK: What stays on the shared volume, and for how long (Backend) (each explained in the README's configuration table)

    public static let retentionDays = "retention.days"
    public static let retentionMaxGiB = "retention.max-gib"

    // MARK: The ProcessingUnit and its sandbox (each explained in the README's configuration table)

    public static let unitBuildMemoryMiB = "unit.build-memory-mib"
    public static let unitBuildUser = "unit.build-user"
    public static let unitJobUser = "unit.job-user"
    public static let unitKeepWorkSeconds = "unit.keep-work-seconds"
    public static let unitMaxOutputFiles = "unit.max-output-files"
    public static let unitMaxOutputMiB = "unit.max-output-mib"
    public static let unitMaxProcesses = "unit.max-processes"
    public static let unitMinFreeMiB = "unit.min-free-mib"
    public static let unitName = "unit.name"
    public static let unitSandbox = "unit.sandbox"
    public static let unitSandboxRoot = "unit.sandbox-root"
    public static let unitShutdownGrace = "unit.shutdown-grace"
    public static let unitExecutor = "unit.executor"

    // MARK: The Slurm executor (ProcessingUnit) (each explained in the README's configuration table)

    public static let slurmAccount = "slurm.account"
    public static let slurmCPUs = "slurm.cpus"
    public static let slurmPartition = "slurm.partition"
    public static let slurmPollSeconds = "slurm.poll-seconds"
    public static let slurmQOS = "slurm.qos"
    public static let slurmRetries = "slurm.retries"
    public static let slurmSandbox = "slurm.sandbox"
}
