import CRabbitMQ
import Foundation

/// A published message waiting for the broker's confirm.
struct PendingConfirm {
    let continuation: CheckedContinuation<Void, any Error>
    let routingKey: String
    let deadline: ContinuousClock.Instant
    /// Set when the broker returned the message; its ack then ends the publish with this error.
    var returned: AMQPError?
}

extension AMQPConnection {
    /// The header that carries a message's publish tag, so that a `basic.return` (which names no tag)
    /// can be matched to the publish it belongs to.
    static let publishTagHeader = "x-ferry-publish-tag"

    /// Publishes a message with `mandatory` set and returns only once the broker confirmed it, so that
    /// a persistent message in a durable queue is safe on disk when this returns. Publishes from many
    /// tasks are pipelined: each waits for its own confirm while the connection sends the next, so
    /// the broker can confirm (and fsync) them together.
    ///
    /// Throws `nacked` when the broker refused it, `returned` when no queue was bound to take it,
    /// `timedOut` when no confirm came within `options.confirmTimeout` or the broker took no data
    /// within `options.sendTimeout` (the connection is then ended, since the message's fate is
    /// unknown), and `connectionLost` when the connection dropped.
    public func publish(
        _ body: [UInt8], exchange: String = "", routingKey: String, properties: AMQPProperties = .init(), mandatory: Bool = true
    ) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                do {
                    try self.ensureOpen()
                    let tag = self.nextPublishTag
                    var tagged = properties
                    tagged.headers[Self.publishTagHeader] = .int(Int64(tag))
                    let arena = CArena()
                    var cProperties = tagged.cProperties(in: arena)
                    // rabbitmq-c sends the frames without a deadline; the stall guard gives them one.
                    let status = self.unbounded {
                        amqp_basic_publish(
                            self.state, self.channel, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0,
                            &cProperties, arena.bytes(body)
                        )
                    }
                    guard status == AMQP_STATUS_OK.rawValue else {
                        throw self.end(AMQPError(.connectionLost, "publishing to \(exchange.isEmpty ? "queue" : "exchange \(exchange)") \(routingKey) failed: \(Self.describe(status: status))"))
                    }
                    self.nextPublishTag += 1
                    self.pendingConfirms[tag] = PendingConfirm(
                        continuation: continuation, routingKey: routingKey, deadline: .now + self.options.confirmTimeout
                    )
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Settles the publishes a `basic.ack` or `basic.nack` covers (one tag, or all up to it with `multiple`).
    func settleConfirms(upTo tag: UInt64, multiple: Bool, nacked: Bool) {
        let tags = multiple ? pendingConfirms.keys.filter { $0 <= tag } : (pendingConfirms[tag] == nil ? [] : [tag])
        for tag in tags {
            guard let pending = pendingConfirms.removeValue(forKey: tag) else { continue }
            if nacked {
                pending.continuation.resume(throwing: AMQPError(.nacked, "the broker refused the message for \(pending.routingKey) (nack); publish it again later"))
            } else if let returned = pending.returned {
                pending.continuation.resume(throwing: returned)
            } else {
                pending.continuation.resume()
            }
        }
    }

    /// Marks the publish a returned message belongs to; its ack follows and ends it with this error.
    func noteReturned(_ back: amqp_basic_return_t, properties: AMQPProperties) {
        guard let tag = properties.headers[Self.publishTagHeader]?.intValue, var pending = pendingConfirms[UInt64(tag)] else { return }
        pending.returned = AMQPError(
            .returned,
            "no queue took the message for routing key \(pending.routingKey): \(back.reply_code) \(String(bytes: back.reply_text)); declare and bind the queue first",
            replyCode: Int(back.reply_code)
        )
        pendingConfirms[UInt64(tag)] = pending
    }

    /// Fails every publish still waiting for a confirm (the channel or connection is gone).
    func failPendingConfirms(_ error: AMQPError) {
        let pending = pendingConfirms
        pendingConfirms.removeAll()
        for confirm in pending.values { confirm.continuation.resume(throwing: error) }
    }

    /// Ends the connection when a confirm is overdue: the fate of the message is unknown.
    func checkConfirmDeadlines() {
        guard let overdue = pendingConfirms.values.first(where: { $0.deadline < .now }) else { return }
        end(AMQPError(.timedOut, "the broker did not confirm the message for \(overdue.routingKey) within \(options.confirmTimeout)"))
    }
}
