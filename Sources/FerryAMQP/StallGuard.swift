import Dispatch
import Glibc
import Synchronization

/// A limit for the rabbitmq-c calls that have none of their own.
///
/// rabbitmq-c sends publishes, acknowledgements and heartbeats with no deadline: its socket is
/// non-blocking, so `SO_SNDTIMEO` does not apply, and it polls for room in the send buffer forever. A
/// broker that stops reading (a memory or disk alarm blocks publishing connections) would hold the
/// connection's queue, and every caller waiting on it, for as long as the alarm lasts. Such calls
/// run inside `around(_:)`; a timer of its own, off the connection's queue, shuts the socket down
/// when one has been busy longer than the limit, which wakes the call with an error. The connection
/// then ends with `timedOut` (see `tripped`) and is never used again.
final class StallGuard: @unchecked Sendable {
    // Sendable invariant: `state` is protected by its Mutex; `timer` and `socket` are set in init
    // and only used through thread-safe Dispatch calls and syscalls.
    private struct State {
        var busySince: ContinuousClock.Instant?
        var depth = 0
        var tripped = false
        var stopped = false
    }
    private let state = Mutex(State())
    private let limit: Duration
    /// A duplicate of the connection's socket: shutting it down reaches the same connection, and it
    /// stays valid whatever rabbitmq-c does with its own descriptor.
    private let socket: Int32
    private let timer: any DispatchSourceTimer

    /// Watches `socket` (duplicated here); nil when the descriptor cannot be duplicated.
    init?(socket original: Int32, limit: Duration) {
        let socket = dup(original)
        guard socket >= 0 else { return nil }
        self.socket = socket
        self.limit = limit
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        let interval = min(1.0, max(0.05, seconds / 4))
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(20))
        timer.setEventHandler { [weak self] in self?.check() }
        timer.setCancelHandler { Glibc.close(socket) }
        timer.resume()
    }

    deinit { stop() }

    /// Runs a call that may wait on the socket without a deadline of its own.
    func around<T>(_ body: () -> T) -> T {
        state.withLock { state in
            if state.depth == 0 { state.busySince = .now }
            state.depth += 1
        }
        defer {
            state.withLock { state in
                state.depth -= 1
                if state.depth == 0 { state.busySince = nil }
            }
        }
        return body()
    }

    /// True once the guard shut the socket down because a call was stuck.
    var tripped: Bool { state.withLock { $0.tripped } }

    /// Stops watching (the connection ended or is going away); the duplicate socket is closed.
    func stop() {
        let wasRunning = state.withLock { state in
            defer { state.stopped = true }
            return !state.stopped
        }
        if wasRunning { timer.cancel() }
    }

    private func check() {
        let stuck = state.withLock { state in
            guard !state.tripped, !state.stopped, let since = state.busySince, ContinuousClock.now - since > limit else { return false }
            state.tripped = true
            return true
        }
        if stuck { shutdown(socket, Int32(SHUT_RDWR)) }
    }
}
