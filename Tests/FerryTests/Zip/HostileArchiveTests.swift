import FerryBundle
import FerryZip
import FerryTestSupport
import Foundation
import Testing

@Suite("Archives that lie or attack")
struct HostileArchiveTests {
    /// Zips 1 MiB of zeros, then rewrites the declared size in both headers to `declared` bytes.
    private func lyingArchive(in work: TemporaryDirectory, declared: UInt32 = 4096) throws -> String {
        try FileManager.default.createDirectory(atPath: work.file("src"), withIntermediateDirectories: true)
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: work.file("src/bomb.bin")))
        try ZipWriter.archive(folder: work.file("src"), to: work.file("lying.zip"))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: work.file("lying.zip"))))
        func patch(signature: [UInt8], sizeOffset: Int) {
            var index = 0
            while index + 4 <= bytes.count {
                if Array(bytes[index..<index + 4]) == signature {
                    bytes.replaceSubrange(index + sizeOffset..<index + sizeOffset + 4, with: (0..<4).map { UInt8(truncatingIfNeeded: declared >> (8 * $0)) })
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

    /// What the job page's single-file download streams: exactly the declared size (the length it
    /// already sent), never more; an entry that holds less stops with `corrupt`.
    @Test func aStreamedEntryYieldsExactlyItsDeclaredSize() throws {
        let work = try TemporaryDirectory()
        for (declared, holds) in [(UInt32(4096), true), (UInt32(2 << 20), false)] {
            let reader = try ZipReader(path: lyingArchive(in: work, declared: declared))
            defer { reader.close() }
            let stream = try reader.openContents(try #require(reader.entries.first { $0.name == "bomb.bin" }))
            defer { stream.close() }
            var total = 0
            func drain() throws {
                while true {
                    let chunk = try stream.read(maxBytes: 1000)
                    if chunk.isEmpty { return }
                    total += chunk.count
                }
            }
            if holds {
                try drain()
                #expect(total == 4096)
            } else {
                let error = #expect(throws: ZipError.self) { try drain() }
                #expect(error?.code == .corrupt)
                #expect(total <= 1 << 20)
            }
        }
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

/// An upload that declares millions of entries is refused from its end record, before libzip reads
/// its central directory into memory (a 1 GiB zip of 20 million tiny entries cost gigabytes).
@Suite("Archives that declare too many entries")
struct DeclaredEntriesTests {
    /// A zip64 archive whose central directory lists `count` empty files (and no file data: the
    /// directory alone is what costs memory).
    static func directoryOnly(entries count: Int, to path: String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        func le(_ value: UInt64, _ bytes: Int) -> [UInt8] { (0..<bytes).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) } }
        var chunk: [UInt8] = []
        var directoryBytes: UInt64 = 0
        for index in 0..<count {
            let name = Array("f\(index)".utf8)
            chunk += le(0x0201_4B50, 4) + le(0x0314, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0x21, 2)
            chunk += le(0, 4) + le(0, 4) + le(0, 4) + le(UInt64(name.count), 2) + le(0, 2) + le(0, 2)
            chunk += le(0, 2) + le(0, 2) + le(0o100644 << 16, 4) + le(0, 4) + name
            if chunk.count > 1 << 20 {
                directoryBytes += UInt64(chunk.count)
                handle.write(Data(chunk))
                chunk.removeAll(keepingCapacity: true)
            }
        }
        directoryBytes += UInt64(chunk.count)
        let zip64Record = directoryBytes
        chunk += le(0x0606_4B50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4)
        chunk += le(UInt64(count), 8) + le(UInt64(count), 8) + le(directoryBytes, 8) + le(0, 8)
        chunk += le(0x0706_4B50, 4) + le(0, 4) + le(zip64Record, 8) + le(1, 4)
        chunk += le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(0, 2)
        handle.write(Data(chunk))
    }

    @Test func aMillionDeclaredEntriesAreRefusedWithoutReadingTheDirectory() async throws {
        let work = try TemporaryDirectory()
        let zip = work.file("million.zip")
        try Self.directoryOnly(entries: 1_000_000, to: zip)
        #expect(try ZipDirectoryRecord.read(path: zip)?.entries == 1_000_000)
        let listed = try await ChildProcess.run(BuildProducts.path("ferry-zip"), ["list", "--max-entries", "20000", "--stats", zip], includingErrors: true)
        #expect(listed.status != 0)
        #expect(listed.output.contains("1000000 entries; at most 20000"), "\(listed.output.prefix(500))")
        let peak = try #require(listed.peakMemory)
        #expect(peak < 64 << 20, "ferry-zip used \(peak >> 20) MiB to refuse the archive")
        // The upload check refuses it the same way, with the bundle's own code.
        #expect(throws: BundleError.self) { try BundleInspector.inspect(archive: zip, uploadName: "million.zip") }
        do {
            _ = try BundleInspector.inspect(archive: zip, uploadName: "million.zip")
        } catch let error as BundleError {
            #expect(error.code == "bundle.too_many_entries")
            #expect(!error.message.contains(work.path), "the message names a server path")
        }
    }
}
