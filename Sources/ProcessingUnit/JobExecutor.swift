import FerryContracts
import Foundation
import Logging
import ServiceLifecycle

/// Accepts runs from the HTTP route and executes them as child tasks of one long-running service,
/// so that shutdown waits for them instead of abandoning them.
struct JobExecutor: Service {
    let runner: JobRunner
    let registry: RunRegistry
    private let queue = AsyncStream<JobMessage>.makeStream()

    init(runner: JobRunner, registry: RunRegistry) {
        self.runner = runner
        self.registry = registry
    }

    /// Starts the job unless this unit already runs it or ran it to the end; returns its state either way
    /// (a redelivered job attaches to its run and never runs twice at once).
    func submit(_ message: JobMessage) async -> RunState {
        let manifest = runner.settings.jobs + "/" + message.jobID + "/manifest.json"
        let (state, isNew) = await registry.claim(message.jobID, finished: Manifest.finishedState(at: manifest))
        if isNew { queue.continuation.yield(message) }
        return state
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for await message in queue.stream.cancelOnGracefulShutdown() {
                group.addTask { await runner.run(message) }
            }
        }
    }
}
