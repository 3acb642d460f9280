import FerryAMQP
import FerryBroker
import FerryContracts
import FerryService
import Foundation
import Logging
import ServiceLifecycle

/// The outbox's other half: every `interval` it hands the Producer again each job that has stayed
/// `submitted` for at least `minimumAge` (the Producer or the broker was down when it was uploaded,
/// or the Backend stopped between writing the job and handing it over). A job handed over twice is
/// harmless: units run one attempt of a job at a time and report a finished one instead of rerunning it.
struct OutboxSweeper: Service {
    let store: JobStore
    let queue: any JobQueue
    var interval: Duration = .seconds(5)
    var minimumAge: TimeInterval = 10
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            await sweep()
        }
    }

    /// One pass; returns how many jobs were queued.
    @discardableResult
    func sweep() async -> Int {
        let waiting: [JobMessage]
        do {
            waiting = try await store.submittedJobs(before: Date().addingTimeInterval(-minimumAge), limit: 200)
        } catch {
            logger.error("cannot read submitted jobs", metadata: ["error": "\(error)"])
            return 0
        }
        let handed = await queue.handOver(waiting, store: store)
        var queued = handed.queued
        if let failure = handed.failure {  // the next pass tries again
            logger.warning("submitted jobs wait for the Producer and the broker", metadata: ["waiting": "\(waiting.count)", "error": "\(failure)"])
        }
        if queued > 0 { logger.notice("queued jobs that had stayed submitted", metadata: ["count": "\(queued)"]) }
        // Sweeps whose runs ended while their release failed (or the Backend was down) go on.
        let turns = SweepTurns(store: store, queue: queue, logger: logger)
        for sweep in (try? await store.sweepsWithHeldRuns()) ?? [] { queued += await turns.release(sweep: sweep) }
        return queued
    }
}

/// Consumes `ferry.dead-jobs`: a job whose message was dead-lettered (its units failed on every
/// attempt, up to the queue's delivery limit) ends `error` with a reason; acknowledged after the write.
struct DeadLetterApplier: Service {
    let link: BrokerLink
    let store: JobStore
    let logger: Logger

    static func reason(attempts: Int?) -> String {
        let tries = attempts.map { "\($0) attempts" } ?? "every attempt"
        return "Ferry could not finish this job: the processing unit running it stopped or failed on \(tries). It was set aside for the operators (dead-letter queue \(Topology.deadLetterQueue)); run it again, and tell them if it happens again."
    }

    func run() async throws {
        // A write that fails is retried until the database answers (no attempt limit: there is
        // nowhere further to set a dead-lettered job aside; its copy stays in ferry.dead-letters).
        let consumer = QueueConsumer(link: link, queue: Topology.deadJobsQueue, prefetch: 16, maxAttempts: nil, deadLettering: .queueArguments, logger: logger)
        await cancelWhenGracefulShutdown {
            await consumer.run { delivery, _ in
                guard let message = try? FerryJSON.decode(JobMessage.self, from: delivery.body) else {
                    logger.error("unreadable dead-lettered message; its copy stays in \(Topology.deadLetterQueue)")
                    return
                }
                let attempts = delivery.deliveryCount > 0 ? delivery.deliveryCount : nil
                do {
                    let ended = try await store.advance(message.jobID, to: .error, at: Date(), reason: Self.reason(attempts: attempts))
                    logger.error("job dead-lettered", metadata: [LogKeys.jobID: "\(message.jobID)", "ended": "\(ended)"])
                } catch {
                    throw DeliveryFailure.transient("the database did not take the dead-lettered job: \(error)")
                }
            }
        }
    }
}
