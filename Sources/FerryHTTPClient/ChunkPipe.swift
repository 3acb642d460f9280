import Foundation

/// A bounded queue of byte chunks between a libcurl callback (which may block its transfer thread)
/// and async Swift code. Async code writes and reads in place when it need not wait; only a wait
/// goes to a thread of its own, never to the cooperative pool or Dispatch's global queues (on
/// Linux those run about as many blocked items at once as there are cores, so a few proxied
/// transfers waiting there would hold up every other user of them, and each other).
/// A full pipe makes the writer wait, so neither side ever buffers more than `capacity` bytes.
public final class ChunkPipe: @unchecked Sendable {
    // Sendable invariant: every stored var is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var buffered = 0
    private var finished = false
    private var failure: (any Error)?
    private var readerGone = false
    private let capacity: Int
    /// How long one side may wait for the other before the pipe gives up (`Stalled`); nil waits forever.
    private let idleTimeout: Duration?

    public init(capacity: Int = 1 << 20, idleTimeout: Duration? = nil) {
        self.capacity = capacity
        self.idleTimeout = idleTimeout
    }

    struct ReaderGone: Error {}

    /// The other side neither wrote nor read for the idle timeout (a client that stopped sending or taking).
    public struct Stalled: Error, CustomStringConvertible {
        public var description: String { "no data moved for the idle timeout" }
    }

    /// Waits once on the condition (locked by the caller); false when the idle timeout passed.
    private func wait() -> Bool {
        guard let idleTimeout else {
            condition.wait()
            return true
        }
        let seconds = Double(idleTimeout.components.seconds) + Double(idleTimeout.components.attoseconds) / 1e18
        return condition.wait(until: Date().addingTimeInterval(seconds))
    }

    /// Appends a chunk, waiting while the pipe is full. Throws once the reader has gone away, or
    /// when it took nothing for the idle timeout.
    func blockingWrite(_ chunk: [UInt8]) throws {
        condition.lock()
        defer { condition.unlock() }
        while !canWrite {
            if !wait() { throw Stalled() }
        }
        try append(chunk)
    }

    /// Up to `maxBytes` bytes, waiting for some; nil once the writer finished and all was read.
    /// Throws `Stalled` when nothing came for the idle timeout.
    func blockingRead(maxBytes: Int) throws -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while !canRead {
            if !wait() { throw Stalled() }
        }
        return try take(maxBytes: maxBytes)
    }

    /// Appends a chunk from async code.
    public func write(_ chunk: [UInt8]) async throws {
        guard try !writeWithoutWaiting(chunk) else { return }
        try await onWaitingThread { try self.blockingWrite(chunk) }
    }

    /// The next chunk for async code; nil at the end.
    public func read() async throws -> [UInt8]? {
        if let ready = try readWithoutWaiting() { return ready }
        return try await onWaitingThread { try self.blockingRead(maxBytes: .max) }
    }

    /// Appends the chunk if the pipe has room (or throws as `blockingWrite`); false when it would wait.
    private func writeWithoutWaiting(_ chunk: [UInt8]) throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard canWrite else { return false }
        try append(chunk)
        return true
    }

    /// What `blockingRead` answers when it need not wait (a chunk, or nil at the end); nil when it would wait.
    private func readWithoutWaiting() throws -> [UInt8]?? {
        condition.lock()
        defer { condition.unlock() }
        guard canRead else { return nil }
        return .some(try take(maxBytes: .max))
    }

    // The steps both sides take once they need not wait, with `condition` locked.
    private var canWrite: Bool { buffered < capacity || readerGone }
    private var canRead: Bool { !chunks.isEmpty || finished }

    private func append(_ chunk: [UInt8]) throws {
        if readerGone { throw ReaderGone() }
        chunks.append(chunk)
        buffered += chunk.count
        condition.broadcast()
    }

    private func take(maxBytes: Int) throws -> [UInt8]? {
        if chunks.isEmpty {
            if let failure { throw failure }
            return nil
        }
        var chunk = chunks.removeFirst()
        if chunk.count > maxBytes {
            chunks.insert(Array(chunk[maxBytes...]), at: 0)
            chunk = Array(chunk[..<maxBytes])
        }
        buffered -= chunk.count
        condition.broadcast()
        return chunk
    }

    /// The writer is done (with `error` if it failed).
    public func finish(throwing error: (any Error)? = nil) {
        condition.lock()
        finished = true
        if failure == nil { failure = error }
        condition.broadcast()
        condition.unlock()
    }

    /// The reader will read no more: a waiting writer stops with an error.
    public func close() {
        condition.lock()
        readerGone = true
        condition.broadcast()
        condition.unlock()
    }

    /// Runs a wait on a thread of its own, which ends with it.
    private func onWaitingThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}
