import Configuration
import FerryContracts

extension JobLimitMaxima {
    /// `limits.time-max` and `limits.memory-max`: the Backend refuses uploads above them, and the
    /// Producer, the Consumers and the units refuse messages above them.
    public init(reader: ConfigReader) throws {
        self.init()
        timeSeconds = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsTimeMax), default: timeSeconds)
        memoryMiB = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsMemoryMax), default: memoryMiB)
        guard timeSeconds > 0 else { throw ConfigurationError(key: ConfigurationKeys.limitsTimeMax, message: "\(timeSeconds); use 1 second or more") }
        guard memoryMiB > 0 else { throw ConfigurationError(key: ConfigurationKeys.limitsMemoryMax, message: "\(memoryMiB); use 1 MiB or more") }
    }
}
