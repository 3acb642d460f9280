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
}
