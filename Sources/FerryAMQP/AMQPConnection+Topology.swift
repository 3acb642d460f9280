import CRabbitMQ

extension AMQPConnection {
    /// Declares an exchange (idempotent when it exists with the same settings; a channel error otherwise).
    public func declareExchange(
        _ name: String, type: AMQPExchangeType, durable: Bool = true, autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) async throws {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            amqp_exchange_declare(
                self.state, self.channel, arena.bytes(name), arena.bytes(type.rawValue),
                0, durable ? 1 : 0, autoDelete ? 1 : 0, 0, arena.table(arguments)
            )
            try self.check(amqp_get_rpc_reply(self.state), "declaring exchange \(name)")
        }
    }

    /// Declares a queue with its arguments, e.g. `["x-queue-type": "quorum", "x-delivery-limit": 5,
    /// "x-dead-letter-exchange": "ferry.dead"]`. An empty name lets the broker choose one (returned).
    @discardableResult
    public func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPQueueState {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            let ok = amqp_queue_declare(
                self.state, self.channel, arena.bytes(name), 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0,
                arena.table(arguments)
            )
            try self.check(amqp_get_rpc_reply(self.state), "declaring queue \(name)")
            return Self.queueState(ok!.pointee)
        }
    }

    /// The state of an existing queue (ready messages, consumers); `NOT_FOUND` as a channel error if it is missing.
    public func inspectQueue(_ name: String) async throws -> AMQPQueueState {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            let ok = amqp_queue_declare(self.state, self.channel, arena.bytes(name), 1, 0, 0, 0, arena.table([:]))
            try self.check(amqp_get_rpc_reply(self.state), "inspecting queue \(name)")
            return Self.queueState(ok!.pointee)
        }
    }

    public func bindQueue(_ queue: String, to exchange: String, routingKey: String = "", arguments: AMQPTable = [:]) async throws {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            amqp_queue_bind(self.state, self.channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), arena.table(arguments))
            try self.check(amqp_get_rpc_reply(self.state), "binding queue \(queue) to exchange \(exchange)")
        }
    }

    /// Deletes a queue and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> Int {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            let ok = amqp_queue_delete(self.state, self.channel, arena.bytes(name), 0, 0)
            try self.check(amqp_get_rpc_reply(self.state), "deleting queue \(name)")
            return Int(ok!.pointee.message_count)
        }
    }

    public func deleteExchange(_ name: String) async throws {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            amqp_exchange_delete(self.state, self.channel, arena.bytes(name), 0)
            try self.check(amqp_get_rpc_reply(self.state), "deleting exchange \(name)")
        }
    }

    private static func queueState(_ ok: amqp_queue_declare_ok_t) -> AMQPQueueState {
        AMQPQueueState(name: String(bytes: ok.queue), messageCount: Int(ok.message_count), consumerCount: Int(ok.consumer_count))
    }
}
