import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import Logging
import ServiceLifecycle

/// Takes jobs off `ferry.jobs` (prefetch = the unit's slots), hands each to the ProcessingUnit, relays
/// every status change to `ferry.events` with publisher confirms, and acknowledges the delivery only
/// after the job's final event is confirmed. A redelivered job attaches to the unit's existing run.
struct JobDispatcher: Service {
    let jobs: BrokerLink
    let events: BrokerLink
    let unitURL: String
    let slots: UInt16
    let unitName: String
    /// The secret the unit's internal routes require.
    let token: InternalToken
    /// A message above these limits (or otherwise malformed) is dead-lettered, never passed on.
    let maxima: JobLimitMaxima
    let http: HTTPClient
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await consume() }
    }

    private func consume() async {
        // Jobs are taken only while the unit can run them (`waitForUnit`); when it stops answering,
        // the consumer's connection is closed, which hands back every job this Consumer holds
        // (running there or only prefetched) to the queue at once, so the healthy units take them.
        // A job that keeps failing is dead-lettered by the queue's own delivery limit.
        let consumer = QueueConsumer(
            link: jobs, queue: Topology.jobsQueue, prefetch: slots, maxAttempts: nil, deadLettering: .queueArguments,
            concurrency: Int(slots), logger: logger
        )
        await consumer.run(beforeConsuming: { await waitForUnit() }, watch: {
            try await watchUnit()
            logger.warning("the unit is not answering; handing its jobs back to the queue until it does")
        }) { delivery, _ in
            try await dispatch(delivery)
        }
    }

    /// Returns once the unit failed two health checks in a row (2 s apart); throws when cancelled.
    private func watchUnit() async throws {
        var failures = 0
        while failures < 2 {
            try await Task.sleep(for: .seconds(2))
            let health = try? await http.execute(.init(url: unitURL + "/health", timeout: .seconds(4)))
            failures = health?.isSuccess == true ? 0 : failures + 1
        }
    }

    /// Follows one job on the unit until its final event is confirmed; the consumer acknowledges it then.
    private func dispatch(_ delivery: AMQPDelivery) async throws {
        let message: JobMessage
        do {
            message = try FerryJSON.decode(JobMessage.self, from: delivery.body)
            try message.check(within: maxima)
        } catch {
            throw DeliveryFailure.permanent("unreadable or invalid job message: \(error)")
        }
        var logger = logger
        logger[metadataKey: "job.id"] = "\(message.jobID)"
        do {
            try await follow(message, logger: logger)
        } catch where Task.isCancelled {
            throw CancellationError()  // shutting down, or the unit went away: straight back to the queue
        } catch {
            // The unit or the broker failed us. Hand the job back once the unit answers again (a
            // restarted unit), so that the retry is not spent on a unit that is still starting; every
            // return counts against the queue's delivery limit, after which the job is dead-lettered
            // and ends `error`.
            logger.warning("job interrupted; handing it back to the queue once the unit answers", metadata: ["error": "\(error)"])
            // The unit is up but could not run it, or its slots are full: wait longer after each attempt.
            let busy = (error as? HTTPClientError)?.status == 503  // slots full, stopping, or the volume nearly full
            let pause: Duration = error is RetryableRunFailure || busy ? .seconds(min(30, 1 << min(delivery.deliveryCount, 5))) : .zero
            await waitForUnit()
            throw DeliveryFailure.transient("\(error)", pause: pause)
        }
    }

    /// Returns when the unit answers /health (checked every second), or when the task is cancelled.
    private func waitForUnit() async {
        while !Task.isCancelled {
            if let health = try? await http.execute(.init(url: unitURL + "/health", timeout: .seconds(5))), health.isSuccess { return }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Starts the run on the unit and publishes each status it reaches until a final one.
    private func follow(_ message: JobMessage, logger: Logger) async throws {
        var state = try await http.json("POST", unitURL + "/internal/v1/runs", body: message, headers: [token.header], timeout: .seconds(30)).decode(RunState.self)
        var published: (status: JobStatus, reason: String?)?
        while true {
            if state.retryable == true {
                throw RetryableRunFailure(reason: state.reason ?? "the unit failed")
            }
            // A run that started and ended between two polls: its start is reported first, so its
            // history, start time and run time are whole (a sweep's table shows every run's time).
            if state.status.isFinal, let started = state.startedAt, published?.status != .running {
                try await publish(RunState(jobID: state.jobID, status: .running, startedAt: started))
            }
            // A new status, or a new reason for the same one (why the job waits in a cluster's queue).
            if state.status != published?.status || state.reason != published?.reason {
                try await publish(state)
                published = (state.status, state.reason)
            }
            if state.status.isFinal { return }
            let url = unitURL + "/internal/v1/runs/\(message.jobID)?after=\(state.status.rawValue)&revision=\(state.revision ?? 0)&wait=25"
            state = try await http.json("GET", url, headers: [token.header], timeout: .seconds(40)).decode(RunState.self)
        }
    }

    private func publish(_ state: RunState) async throws {
        let event = JobEvent(
            jobID: state.jobID, status: state.status, at: state.finishedAt ?? state.startedAt ?? Date(), unit: unitName,
            exitCode: state.exitCode, reason: state.reason, resultBytes: state.resultBytes
        )
        let connection = try await events.connection()
        try await connection.publish(
            try FerryJSON.encode(event), routingKey: Topology.eventsQueue,
            properties: AMQPProperties(contentType: "application/json", messageID: "\(state.jobID):\(state.status.rawValue)")
        )
    }
}

/// The unit could not run the job for a reason of its own (not the job's code): retried through the queue.
struct RetryableRunFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
