import FerryTestSupport
import Foundation
import Testing
@testable import ProcessingUnit

/// The locks a unit waits on (another unit's build of the same environment, another run of the same
/// job) never hold a thread, end when the task is cancelled, and give up after their limit.
@Suite("File locks")
struct FileLockTests {
    @Test(.timeLimit(.minutes(1))) func aWaitEndsWhenItsTaskIsCancelled() async throws {
        let folder = try TemporaryDirectory("ferry-lock")
        let held = try await FileLock.acquire(folder.file("env.lock"))
        defer { held.release() }
        let waiting = Task { try await FileLock.acquire(folder.file("env.lock"), poll: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(300))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
    }

    @Test(.timeLimit(.minutes(1))) func aWaitGivesUpAfterItsLimitAndTheLockIsTakenOnceFree() async throws {
        let folder = try TemporaryDirectory("ferry-lock")
        let held = try await FileLock.acquire(folder.file("env.lock"))
        var waited = false
        let started = ContinuousClock.now
        await #expect(throws: FileLockTimeout.self) {
            _ = try await FileLock.acquire(folder.file("env.lock"), limit: .milliseconds(400), poll: .milliseconds(50)) { waited = true }
        }
        #expect(waited, "the waiter was told it waits")
        #expect(ContinuousClock.now - started >= .milliseconds(400))
        held.release()
        let next = try await FileLock.acquire(folder.file("env.lock"), limit: .milliseconds(400))
        next.release()
    }
}
