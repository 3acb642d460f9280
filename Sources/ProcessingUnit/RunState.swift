import FerryContracts
import Foundation

/// Every run this unit knows, and the requests waiting for one to change (long polls).
actor RunRegistry {
    private var runs: [String: RunState] = [:]
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var cancelRequests: Set<String> = []
    private var stoppers: [String: @Sendable () -> Void] = [:]
    /// When the unit began to shut down (the first of: a long poll saw the signal, the executor was told).
    private var shutdownStarted: ContinuousClock.Instant?

    func state(of jobID: String) -> RunState? { runs[jobID] }

    /// Registers a new run unless one is known; returns the current state and whether it is new, or
    /// nil when the unit already runs `slots` jobs (a new one is refused; the Consumer retries it).
    func claim(_ jobID: String, finished: RunState?, slots: Int = .max) -> (RunState, isNew: Bool)? {
        if let existing = runs[jobID], existing.retryable != true { return (existing, false) }
        if let finished {
            runs[jobID] = finished
            return (finished, false)
        }
        guard running < slots, shutdownStarted == nil else { return nil }
        let state = RunState(jobID: jobID, status: .preparing)
        runs[jobID] = state
        return (state, true)
    }

    /// Runs that have not ended.
    var running: Int { runs.values.filter { !$0.status.isFinal }.count }

    func update(_ jobID: String, _ change: (inout RunState) -> Void) {
        guard let old = runs[jobID] else { return }
        var state = old
        change(&state)
        state.revision = (old.revision ?? 0) + 1
        runs[jobID] = state
        for waiter in waiters.removeValue(forKey: jobID) ?? [] { waiter.resume() }
    }

    /// The unit is stopping: it takes no new runs, and long polls answer at once, so that the HTTP
    /// server can stop without waiting for them. Returns when the shutdown began.
    @discardableResult
    func shutDown() -> ContinuousClock.Instant {
        let started = shutdownStarted ?? .now
        shutdownStarted = started
        for jobID in Array(waiters.keys) { wakeAll(jobID) }
        return started
    }

    /// Returns once the run's status differs from `status` (or, given `revision`, once the run changed
    /// after it), or after `timeout`.
    func wait(for jobID: String, changingFrom status: JobStatus, revision: Int? = nil, timeout: Duration) async -> RunState? {
        guard shutdownStarted == nil, let current = runs[jobID], current.status == status, revision.map({ (current.revision ?? 0) <= $0 }) ?? true else {
            return runs[jobID]
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.suspend(jobID) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            self.wakeAll(jobID)
        }
        return runs[jobID]
    }

    /// The owner canceled the job: a run that has not reached code.py yet stops at its next step, and
    /// a running one is killed now. Returns the run's state, nil when this unit does not have it.
    func cancel(_ jobID: String) -> RunState? {
        guard let state = runs[jobID] else { return nil }
        if !state.status.isFinal {
            cancelRequests.insert(jobID)
            stoppers[jobID]?()
        }
        return state
    }

    func isCancelRequested(_ jobID: String) -> Bool { cancelRequests.contains(jobID) }

    /// What ends the job's processes while code.py runs (nil once it ended).
    func setStopper(_ jobID: String, _ stopper: (@Sendable () -> Void)?) {
        stoppers[jobID] = stopper
        if let stopper, cancelRequests.contains(jobID) { stopper() }  // canceled a moment before it started
        if stopper == nil { cancelRequests.remove(jobID) }
    }

    private func suspend(_ jobID: String) async {
        await withCheckedContinuation { continuation in
            waiters[jobID, default: []].append(continuation)
        }
    }

    private func wakeAll(_ jobID: String) {
        for waiter in waiters.removeValue(forKey: jobID) ?? [] { waiter.resume() }
    }
}
