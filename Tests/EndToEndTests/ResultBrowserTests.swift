import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The job page's results browser on the real stack, through the Frontend as a browser reaches it:
/// a job writes a PNG, a CSV and hostile HTML and SVG; the files are listed and previewed from the
/// result zip, and nothing the job wrote is served in a form that runs.
@Suite("Results browser end to end", .runningStack)
struct ResultBrowserTests {
    var stack: Stack { Stack.current! }

    static let code = """
    import struct, zlib
    def png(width, height):
        rows = b''.join(b'\\x00' + bytes([200, 30, 30]) * width for _ in range(height))
        chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
        return b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
    open('output/plot.png', 'wb').write(png(4, 3))
    with open('output/scores.csv', 'w') as f:
        f.write('subject,score\\n')
        for i in range(200):
            f.write(f'{i},{i * 2}\\n')
    open('output/report.html', 'w').write('<script>document.title = "owned"</script>')
    open('output/figure.svg', 'w').write('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script><rect width="4" height="4"/></svg>')
    """

    @Test func previewsComeFromTheResultAndNothingRuns() async throws {
        let work = try TemporaryDirectory()
        let nora = try await Researcher.signUp("nora", on: stack)
        let job = try await nora.submit(try Bundles.folder("figures", files: ["code.py": Self.code], in: work), fileName: "figures.zip")
        let done = try await nora.waitUntilFinished(job.id)
        #expect(done.status == "succeeded", "\(done.reason ?? "")")

        func get(_ path: String) async throws -> HTTPResponse {
            try await stack.client.execute(HTTPRequest(url: stack.frontendURL + "/api/v1/jobs/\(job.id)" + path, headers: nora.auth))
        }
        let listing = try JSONSerialization.jsonObject(with: Data(try await get("/files").body)) as? [String: Any]
        let files = (listing?["files"] as? [[String: Any]] ?? []).reduce(into: [String: String]()) { $0[$1["name"] as? String ?? ""] = $1["kind"] as? String }
        #expect(files == ["plot.png": "image", "scores.csv": "table", "report.html": "text", "figure.svg": "image"], "\(listing ?? [:])")

        let image = try await get("/file?name=plot.png")
        #expect(image.status == 200 && image.headers["content-type"] == "image/png")
        #expect(Array(image.body.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(image.headers["x-content-type-options"] == "nosniff")
        // Its length comes through the Frontend, so a browser shows a download's progress.
        #expect(image.headers["content-length"] == String(image.body.count) && image.headers["transfer-encoding"] == nil)
        let svg = try await get("/file?name=figure.svg")
        #expect(svg.headers["content-type"] == "image/svg+xml" && svg.headers["content-security-policy"]?.contains("sandbox") == true)
        let table = try await get("/file?name=scores.csv&preview=1")
        #expect(table.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(String(decoding: table.body, as: UTF8.self).hasPrefix("subject,score\n0,0\n1,2\n"))
        let html = try await get("/file?name=report.html")
        #expect(html.headers["content-type"] == "application/octet-stream")
        #expect(html.headers["content-disposition"] == "attachment; filename=\"report.html\"")
        #expect(try await get("/file?name=..%2Fmanifest.json").status == 404)
        let other = try await Researcher.signUp("olga", on: stack)
        let foreign = try await stack.client.execute(HTTPRequest(url: stack.frontendURL + "/api/v1/jobs/\(job.id)/file?name=plot.png", headers: other.auth))
        #expect(foreign.status == 404)
    }
}
