import FerryFiles
import FerryTestSupport
import Foundation
import Testing

/// What a job can leave behind is walked and removed whatever its shape: deeper than PATH_MAX,
/// full of links, with names that are not UTF-8.
@Suite("Walking and removing a job's files")
struct FileTreeTests {
    /// Makes `levels` nested folders named `name` below `root` with a file at the bottom, going down
    /// with relative descriptors (as a job can with mkdir and chdir), past what any path can name.
    private func deepTree(in root: String, levels: Int, name: String = "deep-folder-name") throws {
        var current = open(root, O_RDONLY | O_DIRECTORY)
        try #require(current >= 0)
        for _ in 0..<levels {
            try #require(mkdirat(current, name, 0o755) == 0)
            let next = openat(current, name, O_RDONLY | O_DIRECTORY)
            close(current)
            current = next
        }
        let file = openat(current, "bottom.txt", O_WRONLY | O_CREAT, 0o644)
        _ = write(file, "x", 1)
        close(file)
        close(current)
    }

    @Test func aTreeDeeperThanPathMaxIsRemovedWhole() throws {
        let work = try TemporaryDirectory()
        try deepTree(in: work.path, levels: 600)  // 600 × 17 bytes: past PATH_MAX (4096)
        #expect(FileManager.default.fileExists(atPath: work.file("deep-folder-name")))
        try FileTree.remove(work.file("deep-folder-name"))
        #expect(!FileManager.default.fileExists(atPath: work.file("deep-folder-name")))
    }

    @Test func removalNeverFollowsALink() throws {
        let work = try TemporaryDirectory()
        try work.write("outside/keep.txt", "keep")
        try work.write("tree/a/file.txt", "x")
        try FileManager.default.createSymbolicLink(atPath: work.file("tree/a/link"), withDestinationPath: work.file("outside"))
        try FileManager.default.createSymbolicLink(atPath: work.file("tree/dirlink"), withDestinationPath: work.file("outside"))
        try FileTree.remove(work.file("tree"))
        #expect(!FileManager.default.fileExists(atPath: work.file("tree")))
        #expect(try String(contentsOfFile: work.file("outside/keep.txt"), encoding: .utf8) == "keep")
    }

    @Test func theWalkCountsEveryEntryDownToItsDepthAndNamesAreBytes() throws {
        let work = try TemporaryDirectory()
        try deepTree(in: work.path, levels: 300, name: "d")
        let root = open(work.path, O_RDONLY | O_DIRECTORY)
        defer { close(root) }
        let invalid: [UInt8] = [0x66, 0xFF, 0x66]  // not UTF-8
        let descriptor = (invalid + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { openat(root, $0.baseAddress!, O_WRONLY | O_CREAT, 0o644) } }
        close(descriptor)
        var entries = 0, deepest = 0, sawInvalid = false
        try FileTree.walk(work.path, maxDepth: 50) { entry in
            entries += 1
            deepest = max(deepest, entry.depth)
            if entry.names.last == invalid { sawInvalid = true }
            return .next
        }
        #expect(deepest == 50, "folders at the depth limit are visited, not entered")
        #expect(entries == 51)
        #expect(sawInvalid, "a name that is not UTF-8 was lost")
    }
}
