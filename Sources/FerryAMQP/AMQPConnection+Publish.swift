import CRabbitMQ
import Foundation

extension AMQPConnection {
    /// Publishes a message with `mandatory` set and returns only once the broker confirmed it, so that
    /// a persistent message in a durable queue is safe on disk when this returns.
    ///
    /// Throws `nacked` when the broker refused it, `returned` when no queue was bound to take it,
    /// `timedOut` when no confirm came within `options.confirmTimeout` (the connection is then ended,
    /// since the message's fate is unknown), and `connectionLost` when the connection dropped.
    public func publish(
        _ body: [UInt8], exchange: String = "", routingKey: String, properties: AMQPProperties = .init(), mandatory: Bool = true
    ) async throws {
        try await perform {
            try self.ensureOpen()
            let arena = CArena()
            var cProperties = properties.cProperties(in: arena)
            let tag = self.nextPublishTag
            let status = amqp_basic_publish(
                self.state, self.channel, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0,
                &cProperties, arena.bytes(body)
            )
            guard status == AMQP_STATUS_OK.rawValue else {
                let error = AMQPError(.connectionLost, "publishing to \(exchange.isEmpty ? "queue" : "exchange \(exchange)") \(routingKey) failed: \(Self.describe(status: status))")
                self.end(error)
                throw error
            }
            self.nextPublishTag += 1
            try self.waitForConfirm(of: tag, routingKey: routingKey)
        }
    }

    /// Reads frames until the broker acks or nacks `tag`. A `basic.return` for the message comes
    /// before its ack and makes the publish fail; deliveries for consumers are passed on meanwhile.
    private func waitForConfirm(of tag: UInt64, routingKey: String) throws {
        let deadline = ContinuousClock.now + options.confirmTimeout
        var returned: AMQPError?
        while true {
            let remaining = deadline - .now
            guard remaining > .zero, case .frame(let frame) = try waitForFrame(timeout: remaining) else {
                let error = AMQPError(.timedOut, "the broker did not confirm the message for \(routingKey) within \(options.confirmTimeout)")
                end(error)
                throw error
            }
            guard frame.frame_type == FERRY_FRAME_METHOD, frame.channel == channel else {
                handle(frame)
                continue
            }
            let method = frame.payload.method
            switch method.id {
            case FERRY_BASIC_ACK:
                let ack = method.decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                amqp_maybe_release_buffers(state)
                guard ack.delivery_tag == tag || (ack.multiple != 0 && ack.delivery_tag >= tag) else { continue }
                if let returned { throw returned }
                return
            case FERRY_BASIC_NACK:
                let nack = method.decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                amqp_maybe_release_buffers(state)
                guard nack.delivery_tag == tag || (nack.multiple != 0 && nack.delivery_tag >= tag) else { continue }
                throw AMQPError(.nacked, "the broker refused the message for \(routingKey) (nack); publish it again later")
            case FERRY_BASIC_RETURN:
                let back = method.decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
                returned = AMQPError(
                    .returned,
                    "no queue took the message for routing key \(routingKey): \(back.reply_code) \(String(bytes: back.reply_text)); declare and bind the queue first",
                    replyCode: Int(back.reply_code)
                )
                _ = try readMessage(channel: frame.channel)
                amqp_maybe_release_buffers(state)
            case FERRY_CHANNEL_CLOSE, FERRY_CONNECTION_CLOSE:
                handle(frame)
                throw lifecycleError() ?? AMQPError(.channelClosed, "the broker closed the channel before confirming the message for \(routingKey)")
            default:
                handle(frame)
            }
        }
    }

    private func lifecycleError() -> AMQPError? {
        isOpen ? nil : AMQPError(.connectionLost, "the connection was lost before the broker confirmed the message")
    }
}
