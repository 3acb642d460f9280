import FerryContracts
import Foundation
import Logging
import ServiceLifecycle

/// Accepts runs from the HTTP route and executes them as child tasks of one long-running service,
/// so that shutdown waits for them instead of abandoning them.
struct JobExecutor: Service {
    let runner: JobRunner
    let registry: RunRegistry
    /// On SIGTERM, how long running jobs may go on to finish before they are interrupted (and their
    /// messages, never acknowledged, run again elsewhere).
    let shutdownGrace: Duration
    /// Runs at once; more are refused (the Consumer's prefetch should match, `unit.slots`).
    let slots: Int
    private let queue = AsyncStream<JobMessage>.makeStream()
    private let active = ActiveRuns()

    init(runner: JobRunner, registry: RunRegistry, shutdownGrace: Duration = .seconds(30), slots: Int = .max) {
        self.runner = runner
        self.registry = registry
        self.shutdownGrace = shutdownGrace
        self.slots = slots
    }

    /// Starts the job unless this unit already runs it or ran it to the end; returns its state either
    /// way (a redelivered job attaches to its run and never runs twice at once), or nil when all of
    /// the unit's slots are taken or it is shutting down.
    func submit(_ message: JobMessage) async -> RunState? {
        let manifest = runner.settings.jobs + "/" + message.jobID + "/manifest.json"
        let finished = await BlockingWork.run { Manifest.finishedState(at: manifest) }
        guard let (state, isNew) = await registry.claim(message.jobID, finished: finished, slots: slots) else { return nil }
        if isNew { queue.continuation.yield(message) }
        return state
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for await message in queue.stream.cancelOnGracefulShutdown() {
                group.addTask { [active] in
                    await active.change(by: 1)
                    await runner.run(message)
                    await active.change(by: -1)
                }
            }
            // Shutting down (the service lifecycle's graceful shutdown, on SIGTERM): no new runs; the
            // running ones get the grace period from when it began, then are interrupted.
            let deadline = await registry.shutDown() + shutdownGrace
            while await active.count > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(200))
            }
            group.cancelAll()
        }
    }
}

/// How many runs are in progress.
private actor ActiveRuns {
    private(set) var count = 0

    func change(by delta: Int) { count += delta }
}
