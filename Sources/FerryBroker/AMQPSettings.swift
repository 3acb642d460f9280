import Configuration
import FerryAMQP
import FerryContracts

extension AMQPURL {
    /// Reads `amqp.url` (default: a local broker with the guest user, which RabbitMQ allows on loopback only).
    public init(reader: ConfigReader) throws {
        let string = reader.string(forKey: ConfigKey(ConfigurationKeys.amqpURL), isSecret: true, default: "amqp://guest:guest@127.0.0.1:5672/")
        do {
            try self.init(string)
        } catch let error as AMQPError {
            throw ConfigurationError(key: ConfigurationKeys.amqpURL, message: error.message)
        }
    }
}

extension AMQPConnectionOptions {
    /// Options for a connection named after the service and its role (`ferry-consumer-publisher`).
    /// Heartbeats cannot be turned off: a silent broker is noticed by them. A send the broker does
    /// not take (it stops reading publishers during a memory or disk alarm) ends after
    /// `amqp.send-timeout`.
    public init(reader: ConfigReader, name: String) throws {
        let heartbeat = reader.int(forKey: ConfigKey(ConfigurationKeys.amqpHeartbeatSeconds), default: 15)
        guard (1...600).contains(heartbeat) else {
            throw ConfigurationError(key: ConfigurationKeys.amqpHeartbeatSeconds, message: "\(heartbeat) s; use 1-600 (heartbeats notice a silent broker and cannot be off)")
        }
        let send = reader.int(forKey: ConfigKey(ConfigurationKeys.amqpSendTimeoutSeconds), default: 30)
        guard (1...3600).contains(send) else {
            throw ConfigurationError(key: ConfigurationKeys.amqpSendTimeoutSeconds, message: "\(send) s; use 1-3600")
        }
        self.init(name: name, heartbeatSeconds: heartbeat, sendTimeout: .seconds(send))
    }
}
