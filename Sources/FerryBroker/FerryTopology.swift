import FerryAMQP
import FerryContracts

/// Declares Ferry's RabbitMQ objects (DESIGN.md, "RabbitMQ topology"). Every service declares what
/// it uses when it connects; declaring is idempotent, so the order services start in does not matter.
public enum FerryTopology {
    /// How often a job may be delivered before it is dead-lettered (a unit that keeps dying on it).
    public static let defaultDeliveryLimit: Int64 = 5

    public static func declare(on connection: AMQPConnection, deliveryLimit: Int64 = defaultDeliveryLimit) async throws {
        try await connection.declareExchange(Topology.deadLetterExchange, type: .fanout)
        try await connection.declareQueue(Topology.deadLetterQueue, arguments: ["x-queue-type": "quorum"])
        try await connection.bindQueue(Topology.deadLetterQueue, to: Topology.deadLetterExchange)
        try await connection.declareQueue(Topology.deadJobsQueue, arguments: ["x-queue-type": "quorum"])
        try await connection.bindQueue(Topology.deadJobsQueue, to: Topology.deadLetterExchange)
        try await connection.declareQueue(Topology.jobsQueue, arguments: [
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": .string(Topology.deadLetterExchange),
            "x-delivery-limit": .int(deliveryLimit),
        ])
        try await connection.declareQueue(Topology.eventsQueue, arguments: ["x-queue-type": "quorum"])
        try await connection.declareExchange(Topology.controlExchange, type: .fanout)
    }
}
