@testable import Backend
import FerryContracts
import FerryTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing

/// The job page's results browser through the Backend's router: the files of a result and one file
/// at a time, read from the zip alone, capped, owner-scoped, and never served in a form that runs.
@Suite("Result files")
struct ResultFilesTests {
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 7, count: 24)

    /// A finished job of `owner` whose result holds `files` (the unit's own kind of zip).
    static func finishedJob(_ client: any TestClientProtocol, fixture: BackendRouterTests.Fixture, token: String, files: [String: [UInt8]]) async throws -> Job {
        let job = try await BackendSessionTests.upload(client, token: token)
        var zip = RawZipBuilder()
        for (name, bytes) in files.sorted(by: { $0.key < $1.key }) { zip.add(.init(name: name, data: bytes)) }
        try FileManager.default.createDirectory(atPath: fixture.directory.file("results"), withIntermediateDirectories: true)
        try Data(zip.bytes()).write(to: URL(fileURLWithPath: fixture.directory.file("results/\(job.id).zip")))
        #expect(try await fixture.store.advance(job.id, to: .succeeded, at: Date(), resultBytes: 1))
        return job
    }

    @Test func theFilesOfAResultAreListedAndEachServedSafely() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana"), erin = try await client.account("erin")
            let csv = Array("a,b\n1,\"x, y\"\n".utf8)
            let big = Array(repeating: UInt8(ascii: "z"), count: ResultFiles.previewBytes + 10)
            let job = try await Self.finishedJob(client, fixture: fixture, token: dana, files: [
                "plot.png": Self.png, "table.csv": csv, "notes/long.txt": big, "page.html": Array("<script>alert(1)</script>".utf8),
                "drawing.svg": Array(#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>"#.utf8),
                "model.bin": [0, 1, 2],
            ])
            let auth: HTTPFields = [.authorization: "Bearer \(dana)"]
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/files", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let listing = try JSONDecoder.ferry().decode(ResultFiles.Listing.self, from: response.body)
                let kinds = Dictionary(uniqueKeysWithValues: listing.files.map { ($0.name, $0.kind) })
                #expect(kinds == ["plot.png": .image, "table.csv": .table, "notes/long.txt": .text, "page.html": .text, "drawing.svg": .image, "model.bin": .other])
                #expect(listing.total == 6 && listing.files.first { $0.name == "notes/long.txt" }?.size == UInt64(big.count))
            }
            func get(_ name: String, _ extra: String = "", as token: String? = nil) async throws -> TestResponse {
                let query = "name=" + name.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! + extra
                return try await client.execute(uri: "/api/v1/jobs/\(job.id)/file?\(query)", method: .get, headers: [.authorization: "Bearer \(token ?? dana)"])
            }
            // An image is itself, inline; the API's sandboxing CSP and nosniff hold for it too.
            var response = try await get("plot.png")
            #expect(response.status == .ok && response.headers[.contentType] == "image/png")
            #expect(Array(response.body.readableBytesView) == Self.png)
            #expect(response.headers[.contentSecurityPolicy]?.contains("sandbox") == true)
            #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            // An SVG only as an image (scripts never run in <img>, and the CSP sandbox stops them when opened).
            response = try await get("drawing.svg")
            #expect(response.headers[.contentType] == "image/svg+xml")
            #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            // HTML is never served as HTML: a preview is plain text, a download an attachment.
            response = try await get("page.html", "&preview=1")
            #expect(response.headers[.contentType] == "text/plain; charset=utf-8")
            #expect(String(buffer: response.body) == "<script>alert(1)</script>")
            response = try await get("page.html")
            #expect(response.headers[.contentType] == "application/octet-stream")
            #expect(response.headers[.contentDisposition] == "attachment; filename=\"page.html\"")
            // A preview reads at most 64 KiB and says when there is more; a download has it all.
            response = try await get("notes/long.txt", "&preview=1")
            #expect(response.body.readableBytes == ResultFiles.previewBytes && response.headers[HTTPField.Name("X-Ferry-Truncated")!] == "true")
            response = try await get("notes/long.txt", "&download=1")
            #expect(response.body.readableBytes == big.count && response.headers[.contentDisposition] == "attachment; filename=\"long.txt\"")
            response = try await get("table.csv", "&preview=1")
            #expect(String(buffer: response.body) == "a,b\n1,\"x, y\"\n" && response.headers[HTTPField.Name("X-Ferry-Truncated")!] == "false")
            // Names are entries of the result, never paths.
            for name in ["../../backend/ferry.sqlite", "/etc/passwd", "notes", "missing.txt"] {
                #expect(try await get(name).status == .notFound, "\(name)")
            }
            #expect(try await client.execute(uri: "/api/v1/jobs/\(job.id)/file", method: .get, headers: auth) { $0.status } == .badRequest)
            // Another researcher's job is as missing as one that does not exist.
            #expect(try await get("plot.png", as: erin).status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/jobs/\(job.id)/files", method: .get, headers: [.authorization: "Bearer \(erin)"]) { $0.status } == .notFound)
        }
    }

    /// A file larger than anything read at once (80 MiB, zipped by Info-ZIP) comes whole and
    /// unchanged, streamed with its length: nothing caps a single file's download.
    @Test func aFileOfAnySizeIsDownloadedAlone() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let dana = try await client.account("dana")
            let job = try await BackendSessionTests.upload(client, token: dana)
            let work = try TemporaryDirectory("ferry-large-result")
            try FileManager.default.createDirectory(atPath: work.file("output/data"), withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: work.file("output/data/large.bin"), contents: nil)
            let file = try FileHandle(forWritingTo: URL(fileURLWithPath: work.file("output/data/large.bin")))
            var block = [UInt8](repeating: 0, count: 1 << 20)
            for index in block.indices { block[index] = UInt8(truncatingIfNeeded: index &* 31 &+ index >> 11) }
            for number in 0..<80 {
                block[0] = UInt8(number)
                block[block.count / 2] = UInt8(truncatingIfNeeded: number &* 3)
                try file.write(contentsOf: Data(block))
            }
            try file.close()
            try FileManager.default.createDirectory(atPath: fixture.directory.file("results"), withIntermediateDirectories: true)
            try await ToolZipTests.run("zip", ["-qr", fixture.directory.file("results/\(job.id).zip"), "data"], in: work.file("output"))
            #expect(try await fixture.store.advance(job.id, to: .succeeded, at: Date(), resultBytes: 1))

            let written = try Data(contentsOf: URL(fileURLWithPath: work.file("output/data/large.bin")))
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/file?name=data/large.bin", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentLength] == String(80 << 20))
                #expect(response.headers[.contentDisposition] == "attachment; filename=\"large.bin\"")
                #expect(Data(response.body.readableBytesView) == written)
            }
        }
    }

    @Test func aJobWithoutAResultHasNoFiles() async throws {
        try await BackendRouterTests.withFixture { _, client in
            let dana = try await client.account("dana")
            let job = try await BackendSessionTests.upload(client, token: dana)
            try await client.execute(uri: "/api/v1/jobs/\(job.id)/files", method: .get, headers: [.authorization: "Bearer \(dana)"]) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("job.no_result"))
            }
        }
    }

    @Test func downloadNamesArePlain() {
        #expect(ResultFiles.downloadName("a/b/plot 1.png") == "plot_1.png")
        #expect(ResultFiles.downloadName("x/\"; evil=1") == "___evil_1")
        #expect(ResultFiles.downloadName("..") == "file")
        #expect(ResultFiles.kind(of: "A.PNG") == .image && ResultFiles.kind(of: "data.TSV") == .table && ResultFiles.kind(of: "x") == .other)
    }
}
