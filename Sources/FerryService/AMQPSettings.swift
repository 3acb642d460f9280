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
    public init(reader: ConfigReader, name: String) {
        self.init(name: name, heartbeatSeconds: reader.int(forKey: ConfigKey(ConfigurationKeys.amqpHeartbeatSeconds), default: 15))
    }
}
