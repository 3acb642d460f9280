import Foundation

/// Runs blocking work (a read until EOF, a wait for a process, a blocking socket) on a thread of its
/// own. On the cooperative pool (two threads on a 2-core machine) or Dispatch's global queues it
/// would hold up every other test in the process, and the servers under test, which answer there.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
