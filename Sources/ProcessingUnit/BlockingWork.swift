import Foundation

/// Blocking file work (walking a job's tree, removing it, sealing an environment) on a thread of
/// its own, never on the cooperative pool, which has as many threads as cores.
enum BlockingWork {
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: work()) }
        }
    }
}
