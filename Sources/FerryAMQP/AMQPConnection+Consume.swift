import CRabbitMQ

/// The deliveries of one consumer. It ends with an error when the connection or channel is lost.
/// Dropping it cancels the consumer: later deliveries go back to the queue at once, and the ones it had
/// received but not settled return when the connection closes (settling them stays possible until then).
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    public let tag: String
    let stream: AsyncThrowingStream<AMQPDelivery, any Error>

    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

extension AMQPConnection {
    /// Starts consuming `queue` with manual acknowledgement. `prefetch` is how many unacknowledged
    /// deliveries the broker hands this consumer at once (for a Consumer: its unit's slots).
    public func consume(queue: String, prefetch: UInt16) async throws -> AMQPConsumer {
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        let tag: String = try await perform {
            try self.ensureOpen()
            amqp_basic_qos(self.state, self.channel, 0, prefetch, 0)
            try self.check(amqp_get_rpc_reply(self.state), "setting prefetch \(prefetch)")
            let arena = CArena()
            let ok = amqp_basic_consume(self.state, self.channel, arena.bytes(queue), amqp_bytes_t(), 0, 0, 0, arena.table([:]))
            try self.check(amqp_get_rpc_reply(self.state), "consuming queue \(queue)")
            let tag = String(bytes: ok!.pointee.consumer_tag)
            self.consumers[tag] = continuation
            return tag
        }
        continuation.onTermination = { [weak self] termination in
            guard case .cancelled = termination, let self else { return }
            self.queue.async { self.cancelConsumer(tag) }
        }
        return AMQPConsumer(tag: tag, stream: stream)
    }

    private func cancelConsumer(_ tag: String) {
        guard isOpen, consumers.removeValue(forKey: tag) != nil else { return }
        let arena = CArena()
        amqp_basic_cancel(state, channel, arena.bytes(tag))
        try? check(amqp_get_rpc_reply(state), "canceling consumer \(tag)")
    }

    /// Acknowledges a delivery: the broker forgets the message. Call it only once its effect is durable.
    public func ack(_ delivery: AMQPDelivery) async throws {
        try await settle(delivery, "acknowledging") { amqp_basic_ack(self.state, self.channel, delivery.deliveryTag, 0) }
    }

    /// Negatively acknowledges a delivery; with `requeue` it goes back to the queue, otherwise to the
    /// queue's dead-letter exchange (or is dropped if it has none).
    public func nack(_ delivery: AMQPDelivery, requeue: Bool) async throws {
        try await settle(delivery, "nacking") { amqp_basic_nack(self.state, self.channel, delivery.deliveryTag, 0, requeue ? 1 : 0) }
    }

    /// Rejects a delivery, like `nack` for a single message.
    public func reject(_ delivery: AMQPDelivery, requeue: Bool) async throws {
        try await settle(delivery, "rejecting") { amqp_basic_reject(self.state, self.channel, delivery.deliveryTag, requeue ? 1 : 0) }
    }

    private func settle(_ delivery: AMQPDelivery, _ verb: String, _ send: @escaping @Sendable () -> Int32) async throws {
        try await perform {
            try self.ensureOpen()
            guard delivery.channelGeneration == self.channelGeneration else {
                throw AMQPError(.staleDelivery, "\(verb) delivery \(delivery.deliveryTag): its channel was closed; the broker will deliver the message again")
            }
            let status = self.unbounded(send)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw self.end(AMQPError(.connectionLost, "\(verb) delivery \(delivery.deliveryTag) failed: \(Self.describe(status: status))"))
            }
        }
    }
}
