import FerryZip
import FerryTestSupport
import Foundation
import Testing

@Suite("Archives that lie or attack")
struct HostileArchiveTests {
    /// Zips 1 MiB of zeros, then rewrites the declared size in both headers to 4096 bytes.
    private func lyingArchive(in work: TemporaryDirectory) throws -> String {
        try FileManager.default.createDirectory(atPath: work.file("src"), withIntermediateDirectories: true)
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: work.file("src/bomb.bin")))
        try ZipWriter.archive(folder: work.file("src"), to: work.file("lying.zip"))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: work.file("lying.zip"))))
        func patch(signature: [UInt8], sizeOffset: Int) {
            var index = 0
            while index + 4 <= bytes.count {
                if Array(bytes[index..<index + 4]) == signature {
                    bytes.replaceSubrange(index + sizeOffset..<index + sizeOffset + 4, with: [0x00, 0x10, 0x00, 0x00])
                }
                index += 1
            }
        }
        patch(signature: [0x50, 0x4B, 0x03, 0x04], sizeOffset: 22)  // local header: uncompressed size
        patch(signature: [0x50, 0x4B, 0x01, 0x02], sizeOffset: 24)  // central directory: uncompressed size
        try Data(bytes).write(to: URL(fileURLWithPath: work.file("lying.zip")))
        return work.file("lying.zip")
    }

    @Test func extractionStopsAtTheDeclaredSizeOfALyingEntry() throws {
        let work = try TemporaryDirectory()
        let reader = try ZipReader(path: lyingArchive(in: work))
        let entry = try #require(reader.entries.first { $0.name == "bomb.bin" })
        #expect(entry.size == 4096)  // what the central directory claims
        let error = #expect(throws: ZipError.self) { try reader.extract(entry, to: work.file("bomb.bin")) }
        #expect(error?.code == .sizeMismatch)
        #expect(!FileManager.default.fileExists(atPath: work.file("bomb.bin")), "a partial file was left behind")
    }

    @Test func extractionEnforcesTheByteCapOnRealBytes() throws {
        let work = try TemporaryDirectory()
        try work.write("src/data.txt", String(repeating: "x", count: 100_000))
        try ZipWriter.archive(folder: work.file("src"), to: work.file("a.zip"))
        let reader = try ZipReader(path: work.file("a.zip"))
        let error = #expect(throws: ZipError.self) { try reader.extract(reader.entries[0], to: work.file("out.txt"), maxBytes: 10_000) }
        #expect(error?.code == .limitExceeded)
        #expect(!FileManager.default.fileExists(atPath: work.file("out.txt")))
        #expect(try reader.extract(reader.entries[0], to: work.file("out.txt"), maxBytes: 100_000) == 100_000)
    }

    @Test func pathsThatEscapeAreRefusedBeforeAnythingIsWritten() throws {
        for name in ["../evil.py", "project/../../evil.py", "/etc/cron.d/evil", "C:/evil.py", "..\\evil.py"] {
            let work = try TemporaryDirectory()
            var zip = RawZipBuilder()
            zip.file("project/code.py", "print(1)")
            zip.file(name, "owned")
            try zip.write(to: work.file("evil.zip"))
            try FileManager.default.createDirectory(atPath: work.file("out"), withIntermediateDirectories: true)
            let error = #expect(throws: ZipError.self, "\(name)") { try ZipReader(path: work.file("evil.zip")).extractAll(into: work.file("out")) }
            #expect(error?.code == .unsafePath, "\(name)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: work.file("out")).isEmpty, "\(name): something was extracted")
        }
    }

    @Test func symlinksAreListedAsSuchAndRefused() throws {
        let work = try TemporaryDirectory()
        var zip = RawZipBuilder()
        zip.file("project/code.py", "print(1)")
        zip.symlink("project/data", to: "/etc")
        try zip.write(to: work.file("link.zip"))
        let reader = try ZipReader(path: work.file("link.zip"))
        #expect(reader.entries.map(\.kind) == [.file, .symlink])
        let error = #expect(throws: ZipError.self) { try reader.extractAll(into: work.path) }
        #expect(error?.code == .notRegularFile)
        #expect(error?.message.contains("project/data") == true)
    }

    @Test func encryptedEntriesAreListedAndRefused() throws {
        let work = try TemporaryDirectory()
        var zip = RawZipBuilder()
        zip.add(.init(name: "code.py", data: Array("print(1)".utf8), encrypted: true))
        try zip.write(to: work.file("secret.zip"))
        let reader = try ZipReader(path: work.file("secret.zip"))
        #expect(reader.entries.first?.isEncrypted == true)
        let error = #expect(throws: ZipError.self) { try reader.extract(reader.entries[0], to: work.file("code.py")) }
        #expect(error?.code == .encrypted)
    }

    @Test func notAZipAndTruncatedArchivesAreNamedAsSuch() throws {
        let work = try TemporaryDirectory()
        try work.write("notes.txt", "this is text, not a zip archive, but long enough to look for a directory")
        #expect((#expect(throws: ZipError.self) { try ZipReader(path: work.file("notes.txt")) })?.code == .notAZip)

        try work.write("src/code.py", String(repeating: "print('x')\n", count: 1000))
        try ZipWriter.archive(folder: work.file("src"), to: work.file("whole.zip"))
        let whole = try Data(contentsOf: URL(fileURLWithPath: work.file("whole.zip")))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: work.file("half.zip")))
        let truncated = #expect(throws: ZipError.self) { try ZipReader(path: work.file("half.zip")) }
        #expect(truncated?.code == .notAZip || truncated?.code == .corrupt)
    }

    @Test func entryCountAndTotalSizeLimitsApplyBeforeExtraction() throws {
        let work = try TemporaryDirectory()
        var zip = RawZipBuilder()
        for index in 0..<30 { zip.file("project/f\(index).txt", String(repeating: "y", count: 100)) }
        try zip.write(to: work.file("many.zip"))
        let reader = try ZipReader(path: work.file("many.zip"))
        let tooMany = #expect(throws: ZipError.self) { try reader.extractAll(into: work.path, limits: .init(maxEntries: 10)) }
        #expect(tooMany?.code == .limitExceeded)
        let tooBig = #expect(throws: ZipError.self) { try reader.extractAll(into: work.path, limits: .init(maxTotalBytes: 1000)) }
        #expect(tooBig?.code == .limitExceeded)
        #expect(!FileManager.default.fileExists(atPath: work.file("project")))
    }
}
