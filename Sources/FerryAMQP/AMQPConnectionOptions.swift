/// How a connection behaves: timeouts for every blocking wait, heartbeats, and its name in the broker.
public struct AMQPConnectionOptions: Sendable {
    /// Shown in the management UI's connection list, e.g. `ferry-consumer@host`.
    public var name: String
    /// Seconds between heartbeats; a peer that is silent for two intervals is declared lost.
    public var heartbeatSeconds: Int
    /// TCP connect and AMQP handshake (login) must finish within this.
    public var connectTimeout: Duration
    /// Every synchronous AMQP method (declare, bind, qos, consume, close) must be answered within this.
    public var rpcTimeout: Duration
    /// A published message must be confirmed by the broker within this.
    public var confirmTimeout: Duration
    /// A publish, acknowledgement or heartbeat must be taken by the broker within this (rabbitmq-c
    /// itself waits forever when the broker stops reading, as it does to publishers during a memory or
    /// disk alarm); the connection then ends with `timedOut`.
    public var sendTimeout: Duration

    public init(
        name: String = "ferry", heartbeatSeconds: Int = 15, connectTimeout: Duration = .seconds(5),
        rpcTimeout: Duration = .seconds(10), confirmTimeout: Duration = .seconds(30), sendTimeout: Duration = .seconds(30)
    ) {
        self.name = name
        self.heartbeatSeconds = heartbeatSeconds
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.confirmTimeout = confirmTimeout
        self.sendTimeout = sendTimeout
    }
}
