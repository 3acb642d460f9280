@testable import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The pipe between libcurl's threads and async code (the Frontend's proxy, streamed responses).
@Suite("Chunk pipe")
struct ChunkPipeTests {
    /// Everything written arrives once and in order, however the sides take turns, and the writer
    /// is held back at the capacity.
    @Test func chunksArriveInOrderWithinTheCapacity() async throws {
        let pipe = ChunkPipe(capacity: 4)
        let chunks = (0..<200).map { [UInt8(truncatingIfNeeded: $0), 1, 2] }
        let written = Task {
            for chunk in chunks { try await pipe.write(chunk) }
            pipe.finish()
        }
        var read: [[UInt8]] = []
        // The reader as libcurl is: on a thread of its own (never the cooperative pool's), taking
        // at most 2 bytes at a time.
        let parts = try await onOwnThread {
            var parts: [UInt8] = []
            while let part = try pipe.blockingRead(maxBytes: 2) { parts += part }
            return parts
        }
        try await written.value
        #expect(parts == chunks.flatMap { $0 })
        // And the other way round: libcurl writes, async code reads.
        let back = ChunkPipe(capacity: 4)
        async let wrote: Void = onOwnThread {
            for chunk in chunks { try back.blockingWrite(chunk) }
            back.finish()
        }
        while let chunk = try await back.read() { read.append(chunk) }
        try await wrote
        #expect(read == chunks)
    }

    /// Many transfers waiting at once, more than the machine has cores, all finish: a waiting side
    /// holds none of the threads the others need.
    @Test func manyWaitingTransfersAllFinish() async throws {
        let pipes = (0..<32).map { _ in ChunkPipe(capacity: 1) }
        try await withThrowingTaskGroup(of: Int.self) { group in
            // Every reader waits on an empty pipe first.
            for pipe in pipes {
                group.addTask {
                    var count = 0
                    while let chunk = try await pipe.read() { count += chunk.count }
                    return count
                }
            }
            for pipe in pipes {
                group.addTask {
                    for _ in 0..<50 { try await pipe.write([7]) }
                    pipe.finish()
                    return 0
                }
            }
            var total = 0
            for try await count in group { total += count }
            #expect(total == 32 * 50)
        }
    }

    /// A writer's failure reaches the reader after what was written; a reader that went away stops
    /// a waiting writer.
    @Test func failuresAndAGoneReaderEndTheOtherSide() async throws {
        struct Broken: Error {}
        let pipe = ChunkPipe()
        try await pipe.write([1])
        pipe.finish(throwing: Broken())
        #expect(try await pipe.read() == [1])
        await #expect(throws: Broken.self) { try await pipe.read() }

        let full = ChunkPipe(capacity: 1)
        try await full.write([1])
        let waiting = Task { try await full.write([2]) }
        full.close()
        await #expect(throws: ChunkPipe.ReaderGone.self) { try await waiting.value }
        await #expect(throws: ChunkPipe.ReaderGone.self) { try await full.write([3]) }
    }

    /// A side that waits longer than the idle timeout gives up.
    @Test func anIdleSideStalls() async throws {
        let pipe = ChunkPipe(idleTimeout: .milliseconds(100))
        await #expect(throws: ChunkPipe.Stalled.self) { try await pipe.read() }
    }
}
