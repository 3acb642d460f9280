import Configuration
import FerryBundle
import FerryContracts
import FerryService
import FerryTestSupport
import FerryZip
import Foundation
import Testing

/// Every bundle form Ferry refuses, each with its stable error code, checked before anything is
/// extracted or queued.
@Suite("Hostile bundles are refused")
struct HostileBundleTests {
    static func zip(_ build: (inout RawZipBuilder) -> Void) throws -> String { try HostileBundles.zip(build) }

    @Test(arguments: 0..<HostileBundles.archives.count)
    func archiveFormsAreRefused(_ index: Int) throws {
        let (label, code, build) = HostileBundles.archives[index]
        let path = try Self.zip(build)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = try #require(throws: BundleError.self, "\(label)") { try BundleInspector.inspect(archive: path, uploadName: "p.zip") }
        #expect(error.code == code, "\(label): \(error)")
        #expect(!error.message.isEmpty)
    }

    @Test(arguments: 0..<HostileBundles.requirements.count)
    func forbiddenRequirementsAreRefusedNamingTheLine(_ index: Int) throws {
        let (text, code) = HostileBundles.requirements[index]
        let path = try HostileBundles.withRequirements(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = try #require(throws: BundleError.self) { try BundleInspector.inspect(archive: path, uploadName: "p.zip") }
        #expect(error.code == code, "\(text): \(error)")
        #expect(error.message.contains("requirements.txt line 3"), "\(error.message)")
    }

    @Test func allowedRequirementFormsPass() throws {
        let path = try HostileBundles.zip { $0.file("p/code.py", "print(1)"); $0.file("p/requirements.txt", "numpy==1.26.4 ; python_version >= '3.9'\r\nrequests[socks]>=2,<3  # comment\nsix==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n\n") }
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try BundleInspector.inspect(archive: path, uploadName: "p.zip").requirements.count == 3)
    }

    @Test func sizeCountAndRatioLimitsApply() throws {
        let many = try Self.zip { builder in
            builder.file("p/code.py", "")
            for index in 0..<30 { builder.file("p/data/\(index).txt", "x") }
        }
        let big = try Self.zip { $0.file("p/code.py", ""); $0.file("p/data.bin", String(repeating: "x", count: 4096)) }
        defer { for path in [many, big] { try? FileManager.default.removeItem(atPath: path) } }
        let tooMany = try #require(throws: BundleError.self) { try BundleInspector.inspect(archive: many, uploadName: nil, limits: .init(maxEntries: 10)) }
        #expect(tooMany.code == "bundle.too_many_entries")
        let tooLarge = try #require(throws: BundleError.self) { try BundleInspector.inspect(archive: big, uploadName: nil, limits: .init(maxUncompressedBytes: 1024)) }
        #expect(tooLarge.code == "bundle.too_large")

        // A real deflated entry of 2 MiB of zeros: about 1000:1, far above 200:1.
        let work = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: work.file("p"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: work.file("p/code.py"), contents: Data())
        FileManager.default.createFile(atPath: work.file("p/zeros.bin"), contents: Data(count: 2 << 20))
        let bomb = work.file("bomb.zip")
        let staging = try TemporaryDirectory()
        try FileManager.default.moveItem(atPath: work.file("p"), toPath: staging.file("p"))
        _ = try ZipWriter.archive(folder: staging.path, to: bomb)
        let ratio = try #require(throws: BundleError.self) { try BundleInspector.inspect(archive: bomb, uploadName: nil) }
        #expect(ratio.code == "bundle.suspicious_compression")
    }

    @Test func emptyCorruptAndTruncatedUploadsAreNamedAsSuch() throws {
        let valid = try Self.zip { $0.file("p/code.py", "print('a fairly long line so that truncation cuts the central directory')") }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: valid))
        let empty = valid + ".empty", truncated = valid + ".cut", garbage = valid + ".txt"
        FileManager.default.createFile(atPath: empty, contents: Data())
        FileManager.default.createFile(atPath: truncated, contents: bytes.prefix(bytes.count - 30))
        FileManager.default.createFile(atPath: garbage, contents: Data("just some text, not a zip file".utf8))
        defer { for path in [valid, empty, truncated, garbage] { try? FileManager.default.removeItem(atPath: path) } }
        for (path, codes) in [(empty, ["bundle.empty"]), (truncated, ["bundle.corrupt", "bundle.not_a_zip"]), (garbage, ["bundle.not_a_zip"])] {
            let error = try #require(throws: BundleError.self) { try BundleInspector.inspect(archive: path, uploadName: nil) }
            #expect(codes.contains(error.code), "\(path): \(error)")
        }
    }

    @Test func limitsComeFromConfigurationAndBadValuesAreRefused() throws {
        let reader = ConfigReader(provider: InMemoryProvider(values: [
            "limits.bundle-entries": 5, "limits.bundle-uncompressed-mib": 1, "limits.bundle-compression-ratio": 50,
        ]))
        let limits = try BundleLimits(reader: reader)
        #expect(limits.maxEntries == 5 && limits.maxUncompressedBytes == 1 << 20 && limits.maxCompressionRatio == 50)
        let many = try Self.zip { builder in
            builder.file("p/code.py", "")
            for index in 0..<6 { builder.file("p/\(index).txt", "x") }
        }
        defer { try? FileManager.default.removeItem(atPath: many) }
        #expect(throws: BundleError.self) { try BundleInspector.inspect(archive: many, uploadName: nil, limits: limits) }
        #expect(throws: ConfigurationError.self) { try BundleLimits(reader: ConfigReader(provider: InMemoryProvider(values: ["limits.bundle-entries": 0]))) }
    }
}
