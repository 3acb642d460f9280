import FerryContracts
import Foundation
import Logging
import Synchronization
import ServiceLifecycle

/// Accepts runs from the HTTP route and executes them as child tasks of one long-running service,
/// so that shutdown waits for them instead of abandoning them.
struct JobExecutor: Service {
    let runner: JobRunner
    let registry: RunRegistry
    /// On SIGTERM, how long running jobs may go on to finish before they are interrupted (and their
    /// messages, never acknowledged, run again elsewhere).
    let shutdownGrace: Duration
    private let queue = AsyncStream<JobMessage>.makeStream()
    private let active = ActiveRuns()

    init(runner: JobRunner, registry: RunRegistry, shutdownGrace: Duration = .seconds(30)) {
        self.runner = runner
        self.registry = registry
        self.shutdownGrace = shutdownGrace
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
        // The grace period starts with the signal itself. The HTTP server stops before this service
        // is told to, and it waits for the Consumers' long polls, which the registry now ends at once.
        let signalled = Mutex<ContinuousClock.Instant?>(nil)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [registry] in
                signalled.withLock { $0 = $0 ?? .now }
                Task { await registry.shutDown() }
            }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        await withDiscardingTaskGroup { group in
            for await message in queue.stream.cancelOnGracefulShutdown() {
                group.addTask { [active] in
                    await active.change(by: 1)
                    await runner.run(message)
                    await active.change(by: -1)
                }
            }
            // Shutting down: no new runs; the running ones get the grace period, then are interrupted.
            let deadline = (signalled.withLock { $0 } ?? .now) + shutdownGrace
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
