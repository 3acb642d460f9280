import FerryContracts
import FerryService
import Foundation
import Logging

/// A sweep's throttle: at most `throttle` of its runs are queued, preparing or running at once.
/// The rest wait `held` in the database, and each time one ends (its event, a cancel) the next go
/// to the Producer. A release that fails is retried by the outbox's next pass, so nothing waits for ever.
struct SweepTurns: Sendable {
    let store: JobStore
    let queue: any JobQueue
    let logger: Logger

    static func waitingReason(throttle: Int) -> String {
        "Waits for its turn: this sweep runs at most \(throttle) at once."
    }

    /// Queues the sweep's next runs while it has free places; returns how many went.
    @discardableResult
    func release(sweep id: String) async -> Int {
        let messages: [JobMessage]
        do {
            messages = try await store.releaseRuns(sweepID: id)
        } catch {
            logger.warning("the sweep's next runs wait for the outbox's next pass", metadata: ["sweep": "\(id)", "error": "\(error)"])
            return 0
        }
        let (queued, failure) = await queue.handOver(messages, store: store)
        if let failure {
            // Released and still submitted: the outbox hands them over once the Producer answers.
            logger.warning("a sweep's runs stay submitted until the Producer takes them", metadata: ["sweep": "\(id)", "error": "\(failure)"])
        }
        return queued
    }
}
