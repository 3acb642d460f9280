import FerryZip
import FerryTestSupport
import Foundation
import Testing

@Suite("Zip round trips")
struct ZipRoundTripTests {
    @Test func nestedAndEmptyFoldersSurviveARoundTrip() throws {
        let work = try TemporaryDirectory()
        try work.write("project/code.py", "print('hello')\n")
        try work.write("project/data/raw/2024/samples.csv", "a,b\n1,2\n")
        try work.write("project/data/notes é ü.txt", "unicode names\n")
        try FileManager.default.createDirectory(atPath: work.file("project/output"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work.file("project/data/empty/deeper"), withIntermediateDirectories: true)
        try work.write("project/run.sh", "#!/bin/sh\n")
        chmod(work.file("project/run.sh"), 0o755)

        let summary = try ZipWriter.archive(folder: work.file("project"), to: work.file("project.zip"))
        #expect(summary.files == 4)
        #expect(summary.directories == 6)
        #expect(summary.skipped.isEmpty)

        let reader = try ZipReader(path: work.file("project.zip"))
        let names = Set(reader.entries.map(\.name))
        #expect(names.isSuperset(of: ["code.py", "output/", "data/empty/deeper/", "data/raw/2024/samples.csv", "data/notes é ü.txt"]))
        #expect(reader.entries.first { $0.name == "code.py" }?.size == 15)
        #expect(reader.entries.first { $0.name == "output/" }?.kind == .directory)

        try FileManager.default.createDirectory(atPath: work.file("restored"), withIntermediateDirectories: true)
        try reader.extractAll(into: work.file("restored"))
        #expect(try snapshot(of: work.file("restored")) == snapshot(of: work.file("project")))
        #expect(FileManager.default.isExecutableFile(atPath: work.file("restored/run.sh")))
        #expect(!FileManager.default.isExecutableFile(atPath: work.file("restored/code.py")))
    }

    @Test func emptyFolderMakesAValidEmptyArchive() throws {
        let work = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: work.file("output"), withIntermediateDirectories: true)
        try ZipWriter.archive(folder: work.file("output"), to: work.file("output.zip"))
        #expect(try ZipReader(path: work.file("output.zip")).entries.isEmpty)
    }

    @Test func archivingLeavesOutSymlinksAndNeverLeavesAPartialFile() throws {
        let work = try TemporaryDirectory()
        try work.write("output/result.txt", "42\n")
        try FileManager.default.createSymbolicLink(atPath: work.file("output/secrets"), withDestinationPath: "/etc")
        let summary = try ZipWriter.archive(folder: work.file("output"), to: work.file("result.zip"))
        #expect(summary.skipped == ["secrets"])
        #expect(try ZipReader(path: work.file("result.zip")).entries.map(\.name) == ["result.txt"])

        // A folder that cannot be read fails the archive, and neither the archive nor a temporary remains.
        #expect(throws: ZipError.self) { try ZipWriter.archive(folder: work.file("missing"), to: work.file("other.zip")) }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.contains("other.zip") }
        #expect(leftovers.isEmpty)
    }

    /// 200 MB through `ferry-zip` in a child process, which reports its own peak memory.
    @Test func twoHundredMegabyteFileRoundTripsWithBoundedMemory() async throws {
        let work = try TemporaryDirectory()
        let size = 200 * 1024 * 1024
        try FileManager.default.createDirectory(atPath: work.file("big"), withIntermediateDirectories: true)
        try writePseudoRandomFile(work.file("big/data.bin"), bytes: size)

        let tool = BuildProducts.path("ferry-zip")
        let create = try await ChildProcess.run(tool, ["create", "--stats", work.file("big"), work.file("big.zip")])
        #expect(create.status == 0)
        let extract = try await ChildProcess.run(tool, ["extract", "--stats", work.file("big.zip"), work.file("restored")])
        #expect(extract.status == 0)

        #expect(try filesAreEqual(work.file("big/data.bin"), work.file("restored/data.bin")))
        let limit = 64 * 1024 * 1024
        let createPeak = try #require(create.peakMemory)
        let extractPeak = try #require(extract.peakMemory)
        #expect(createPeak < limit, "zipping 200 MB peaked at \(createPeak / 1_048_576) MiB")
        #expect(extractPeak < limit, "extracting 200 MB peaked at \(extractPeak / 1_048_576) MiB")
    }

    /// Writes data that does not compress (xorshift), in 1 MiB chunks.
    private func writePseudoRandomFile(_ path: String, bytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var chunk = [UInt64](repeating: 0, count: 131_072)
        for _ in 0..<(bytes / (chunk.count * 8)) {
            for index in chunk.indices {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                chunk[index] = state
            }
            try chunk.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
        }
    }

    private func filesAreEqual(_ first: String, _ second: String) throws -> Bool {
        let a = try FileHandle(forReadingFrom: URL(fileURLWithPath: first))
        let b = try FileHandle(forReadingFrom: URL(fileURLWithPath: second))
        defer { try? a.close(); try? b.close() }
        while true {
            let left = try a.read(upToCount: 1 << 20) ?? Data()
            let right = try b.read(upToCount: 1 << 20) ?? Data()
            if left != right { return false }
            if left.isEmpty { return true }
        }
    }
}
