import CRabbitMQ
import Foundation
import Glibc

extension AMQPConnection {
    enum FrameWait {
        case frame(amqp_frame_t)
        case timedOut
    }

    /// Waits up to `timeout` for the next frame. rabbitmq-c answers heartbeats inside this call.
    /// A failed read ends the connection and throws `connectionLost`.
    func waitForFrame(timeout: Duration) throws -> FrameWait {
        var frame = amqp_frame_t()
        var wait = timeval(timeout)
        // It may send a due heartbeat, which rabbitmq-c does without a deadline.
        let status = unbounded { amqp_simple_wait_frame_noblock(state, &frame, &wait) }
        if status == AMQP_STATUS_OK.rawValue { return .frame(frame) }
        if status == AMQP_STATUS_TIMEOUT.rawValue { return .timedOut }
        throw end(AMQPError(.connectionLost, "reading from the broker failed: \(Self.describe(status: status))"))
    }

    /// Starts watching the socket: a read source runs `readReadyFrames()` on `queue` whenever the
    /// broker sent something, so no call ever waits behind a blocking read; a timer ticks every quarter
    /// heartbeat (at most a second) to send heartbeats, notice a silent broker and overdue confirms.
    /// The source watches a duplicate of the socket, so rabbitmq-c can close its own descriptor
    /// whenever it likes; the source closes the duplicate when it is cancelled.
    func startWatching() {
        stallGuard = StallGuard(socket: amqp_get_sockfd(state), limit: options.sendTimeout)
        let watched = dup(amqp_get_sockfd(state))
        guard watched >= 0 else { return }
        let reader = DispatchSource.makeReadSource(fileDescriptor: watched, queue: queue)
        reader.setEventHandler { [weak self] in self?.readReadyFrames() }
        reader.setCancelHandler { Glibc.close(watched) }
        reader.resume()
        let heartbeat = Double(amqp_get_heartbeat(state))
        let interval = heartbeat > 0 ? min(1.0, max(0.1, heartbeat / 4)) : 1.0
        let ticker = DispatchSource.makeTimerSource(queue: queue)
        ticker.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(50))
        ticker.setEventHandler { [weak self] in self?.tick() }
        ticker.resume()
        watchers = [reader, ticker]
    }

    /// Stops the read source and the timer (the connection ended or is going away).
    func stopWatching() {
        for watcher in watchers { watcher.cancel() }
        watchers = []
        stallGuard?.stop()
    }

    /// Handles every frame that is ready without waiting: those rabbitmq-c already buffered and those
    /// on the socket. rabbitmq-c also sends a due heartbeat inside this call.
    func readReadyFrames() {
        do {
            while isOpen, case .frame(let frame) = try waitForFrame(timeout: .zero) {
                handle(frame)
            }
        } catch {
            // waitForFrame ended the connection
        }
    }

    /// After a synchronous call: frames that arrived during it wait in rabbitmq-c's buffer, where
    /// the read source cannot see them.
    func readBufferedFrames() {
        if isOpen, amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 { readReadyFrames() }
    }

    private func tick() {
        guard isOpen else { return }
        checkConfirmDeadlines()
        readReadyFrames()
    }

    /// Handles a frame that arrived outside a synchronous call: a delivery, a channel or connection
    /// close, a consumer cancel by the broker, flow control, or a late confirm (ignored).
    func handle(_ frame: amqp_frame_t) {
        defer { amqp_maybe_release_buffers(state) }
        guard frame.frame_type == FERRY_FRAME_METHOD else { return }
        let method = frame.payload.method
        switch method.id {
        case FERRY_BASIC_DELIVER:
            deliver(method.decoded!.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee, channel: frame.channel)
        case FERRY_BASIC_ACK:
            let ack = method.decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            settleConfirms(upTo: ack.delivery_tag, multiple: ack.multiple != 0, nacked: false)
        case FERRY_BASIC_NACK:
            let nack = method.decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            settleConfirms(upTo: nack.delivery_tag, multiple: nack.multiple != 0, nacked: true)
        case FERRY_BASIC_RETURN:
            let returned = method.decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            if let message = try? readMessage(channel: frame.channel) {
                noteReturned(returned, properties: message.properties)
            }
        case FERRY_BASIC_CANCEL:
            let cancel = method.decoded!.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = String(bytes: cancel.consumer_tag)
            consumers.removeValue(forKey: tag)?.finish(throwing: AMQPError(.consumerCanceled, "the broker canceled consumer \(tag) (was its queue deleted?)"))
        case FERRY_CHANNEL_CLOSE:
            channelClosed(method.decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee)
        case FERRY_CONNECTION_CLOSE:
            connectionClosed(method.decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee)
        case FERRY_CONNECTION_BLOCKED:
            logger.warning("the broker blocks publishing (memory or disk alarm); confirms will wait")
        case FERRY_CONNECTION_UNBLOCKED:
            logger.notice("the broker accepts publishing again")
        default:
            break  // methods Ferry does not use
        }
    }

    /// Reads the content header and body frames that follow a deliver or return method.
    func readMessage(channel: amqp_channel_t) throws -> (body: [UInt8], properties: AMQPProperties) {
        var message = amqp_message_t()
        // rabbitmq-c reads the body frames without a deadline.
        let reply = unbounded { amqp_read_message(state, channel, &message, 0) }
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            throw end(AMQPError(.connectionLost, "reading a message body failed: \(Self.describe(reply))"))
        }
        defer { amqp_destroy_message(&message) }
        return ([UInt8](bytes: message.body), AMQPProperties(message.properties))
    }

    private func deliver(_ deliver: amqp_basic_deliver_t, channel: amqp_channel_t) {
        let tag = String(bytes: deliver.consumer_tag)
        let deliveryTag = deliver.delivery_tag
        let redelivered = deliver.redelivered != 0
        let exchange = String(bytes: deliver.exchange)
        let routingKey = String(bytes: deliver.routing_key)
        guard let (body, properties) = try? readMessage(channel: channel) else { return }
        guard let consumer = consumers[tag] else {
            // The stream was dropped; hand the message back so another consumer gets it.
            _ = unbounded { amqp_basic_reject(state, channel, deliveryTag, 1) }
            return
        }
        consumer.yield(AMQPDelivery(
            body: body, properties: properties, deliveryTag: deliveryTag, redelivered: redelivered,
            exchange: exchange, routingKey: routingKey, consumerTag: tag, channelGeneration: channelGeneration
        ))
    }

    /// The broker closed the channel (a failed declare, an ack of an unknown tag): acknowledge the close,
    /// end the consumers that lived on it, and reopen it so the connection stays usable.
    @discardableResult
    func channelClosed(_ close: amqp_channel_close_t) -> AMQPError {
        let error = AMQPError(.channelClosed, "\(close.reply_code) \(String(bytes: close.reply_text))", replyCode: Int(close.reply_code))
        var closeOK = amqp_channel_close_ok_t(dummy: 0)
        _ = unbounded { amqp_send_method(state, channel, FERRY_CHANNEL_CLOSE_OK, &closeOK) }
        for continuation in consumers.values { continuation.finish(throwing: error) }
        consumers.removeAll()
        failPendingConfirms(error)
        do {
            try openChannel()
        } catch {
            end(AMQPError(.connectionLost, "reopening the channel failed: \(error)"))
        }
        return error
    }

    /// The broker closed the connection (shutdown, `rabbitmqctl close_connection`, a fatal error).
    @discardableResult
    func connectionClosed(_ close: amqp_connection_close_t) -> AMQPError {
        let error = AMQPError(
            .connectionLost, "the broker closed the connection: \(close.reply_code) \(String(bytes: close.reply_text))",
            replyCode: Int(close.reply_code)
        )
        var closeOK = amqp_connection_close_ok_t(dummy: 0)
        _ = unbounded { amqp_send_method(state, 0, FERRY_CONNECTION_CLOSE_OK, &closeOK) }
        return end(error)
    }

    /// Maps the reply of a synchronous call to an error. Library failures (timeouts, socket errors)
    /// end the connection: its protocol state is unknown afterwards.
    func check(_ reply: amqp_rpc_reply_t, _ context: @autoclosure () -> String) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == FERRY_CHANNEL_CLOSE:
            let error = channelClosed(reply.reply.decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee)
            throw AMQPError(error.code, "\(context()): \(error.message)", replyCode: error.replyCode)
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == FERRY_CONNECTION_CLOSE:
            let error = connectionClosed(reply.reply.decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee)
            throw AMQPError(error.code, "\(context()): \(error.message)", replyCode: error.replyCode)
        default:
            let timedOut = reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT.rawValue
            throw end(AMQPError(timedOut ? .timedOut : .connectionLost, "\(context()): \(Self.describe(reply))"))
        }
    }

    static func describe(status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    static func describe(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL: "ok"
        case AMQP_RESPONSE_NONE: "no reply (missing RPC reply type)"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION: describe(status: reply.library_error)
        default: "server exception (method \(String(reply.reply.id, radix: 16)))"
        }
    }
}
