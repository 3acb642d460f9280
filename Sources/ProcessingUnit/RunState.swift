import FerryContracts
import Foundation

/// Every run this unit knows, and the requests waiting for one to change (long polls).
actor RunRegistry {
    private var runs: [String: RunState] = [:]
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func state(of jobID: String) -> RunState? { runs[jobID] }

    /// Registers a new run unless one is known; returns the current state and whether it is new.
    func claim(_ jobID: String, finished: RunState?) -> (RunState, isNew: Bool) {
        if let existing = runs[jobID] { return (existing, false) }
        if let finished {
            runs[jobID] = finished
            return (finished, false)
        }
        let state = RunState(jobID: jobID, status: .preparing)
        runs[jobID] = state
        return (state, true)
    }

    func update(_ jobID: String, _ change: (inout RunState) -> Void) {
        guard var state = runs[jobID] else { return }
        change(&state)
        runs[jobID] = state
        for waiter in waiters.removeValue(forKey: jobID) ?? [] { waiter.resume() }
    }

    /// Returns once the run's status differs from `status`, or after `timeout`.
    func wait(for jobID: String, changingFrom status: JobStatus, timeout: Duration) async -> RunState? {
        guard let current = runs[jobID], current.status == status else { return runs[jobID] }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.suspend(jobID) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            self.wakeAll(jobID)
        }
        return runs[jobID]
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
