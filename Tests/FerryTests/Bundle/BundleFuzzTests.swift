import FerryBundle
import FerryTestSupport
import FerryZip
import Foundation
import Testing

/// Random and mutated archives against the bundle inspector and extraction: whatever the bytes, it
/// answers (a BundleError or a report) without crashing or hanging, and never writes outside the
/// work folder. Seeded, so a failure reproduces.
@Suite("Bundle inspector under fuzzing")
struct BundleFuzzTests {
    /// SplitMix64: small, fast and deterministic.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func seeds() throws -> [[UInt8]] {
        var plain = RawZipBuilder()
        plain.directory("proj")
        plain.file("proj/code.py", "print('hello')\n")
        plain.file("proj/requirements.txt", "six==1.16.0\n")
        plain.directory("proj/output")
        plain.file("proj/data/a.csv", "1,2,3\n")
        var flat = RawZipBuilder()
        flat.file("code.py", "open('output/x', 'w')\n")
        flat.file("__MACOSX/._code.py", "litter")
        // A deflated archive, so mutations also hit compressed streams.
        let work = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: work.file("src/proj/data"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: work.file("src/proj/code.py"), contents: Data("print(sum(range(10)))\n".utf8))
        FileManager.default.createFile(atPath: work.file("src/proj/data/text.txt"), contents: Data(String(repeating: "ferry ", count: 4000).utf8))
        _ = try ZipWriter.archive(folder: work.file("src"), to: work.file("deflated.zip"))
        return [plain.bytes(), flat.bytes(), Array(try Data(contentsOf: URL(fileURLWithPath: work.file("deflated.zip"))))]
    }

    static func mutate(_ bytes: [UInt8], using random: inout Generator, mild: Bool) -> [UInt8] {
        var bytes = bytes
        if mild {  // a few bytes of the local headers and data: the central directory stays readable
            for _ in 0..<Int.random(in: 1...3, using: &random) { bytes[Int.random(in: 0..<bytes.count / 2, using: &random)] ^= UInt8.random(in: 1...255, using: &random) }
            return bytes
        }
        for _ in 0..<Int.random(in: 1...2, using: &random) {
            guard !bytes.isEmpty else { break }
            switch Int.random(in: 0..<6, using: &random) {
            case 0:  // flip bytes
                for _ in 0..<Int.random(in: 1...3, using: &random) { bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random) }
            case 1:  // truncate
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &random)))
            case 2:  // insert random bytes
                let insert = (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                bytes.insert(contentsOf: insert, at: Int.random(in: 0...bytes.count, using: &random))
            case 3:  // path tricks where names are: '/', '.', '\\' and NUL
                let tricks: [UInt8] = [0x2F, 0x2E, 0x5C, 0x00]
                for _ in 0..<Int.random(in: 1...8, using: &random) { bytes[Int.random(in: 0..<bytes.count, using: &random)] = tricks.randomElement(using: &random)! }
            case 4:  // huge sizes and counts in headers
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let at = Int.random(in: 0..<max(1, bytes.count - 4), using: &random)
                    for offset in 0..<min(4, bytes.count - at) { bytes[at + offset] = 0xFF }
                }
            default:  // pure noise
                bytes = (0..<Int.random(in: 0...512, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
        }
        return bytes
    }

    @Test(.timeLimit(.minutes(2)))
    func mutatedArchivesNeverCrashHangOrEscape() throws {
        var random = Generator(state: 20_261_121)
        let seeds = try Self.seeds()
        var accepted = 0, refused = 0
        for iteration in 0..<400 {
            let root = try TemporaryDirectory()
            let archive = root.file("upload.zip")
            // Every tenth archive is a seed as it is, so that extraction runs on accepted archives too.
            let seed = seeds[iteration % seeds.count]
            let bytes = iteration % 10 == 0 ? seed : Self.mutate(seed, using: &random, mild: iteration % 3 == 0)
            FileManager.default.createFile(atPath: archive, contents: Data(bytes))
            do {
                _ = try BundleInspector.inspect(archive: archive, uploadName: "fuzz.zip", limits: .init(maxUncompressedBytes: 64 << 20))
                accepted += 1
            } catch is BundleError {
                refused += 1
                continue
            }
            // The inspector accepted it: extraction must stay inside the work folder whatever happens.
            let work = root.file("work")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            if let reader = try? ZipReader(path: archive) {
                _ = try? reader.extractAll(into: work, limits: .init(maxTotalBytes: 64 << 20), including: { !BundleInspector.isLitter(name: $0.name) })
                reader.close()
            }
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: root.path)) == ["upload.zip", "work"], "iteration \(iteration) wrote outside the work folder")
            let walker = FileManager.default.enumerator(atPath: work)
            while let name = walker?.nextObject() as? String {
                var info = stat()
                #expect(lstat(work + "/" + name, &info) == 0 && info.st_mode & S_IFMT != S_IFLNK, "iteration \(iteration) extracted a link: \(name)")
            }
        }
        // The mutations must exercise both paths, or the test proves nothing.
        #expect(accepted >= 40 && refused >= 100, "accepted \(accepted), refused \(refused)")
    }
}
