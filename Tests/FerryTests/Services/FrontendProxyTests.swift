import FerryHTTPClient
import FerryTestSupport
import Foundation
@testable import Frontend
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@Suite("Frontend pages and proxy")
struct FrontendProxyTests {
    /// Runs `body` with the base URLs of a live Frontend and of the fake Backend behind it.
    private func withFrontend(_ body: @escaping @Sendable (HTTPClient, String) async throws -> Void) async throws {
        let client = HTTPClient(configuration: .init(defaultTimeout: .seconds(30)))
        let upstream = HTTPClient(configuration: .init(defaultTimeout: nil))
        try await TestServer.application().test(.live) { backend in
            let backendURL = "http://127.0.0.1:\(try #require(backend.port))"
            let proxy = BackendProxy(backendURL: backendURL, client: upstream, logger: Logger(label: "test"))
            let pages = try await Pages.load(backendURL: backendURL, client: upstream, logger: Logger(label: "test"))
            let frontend = Application(router: buildFrontendRouter(proxy: proxy, pages: pages), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await frontend.test(.live) { browser in
                try await body(client, "http://127.0.0.1:\(try #require(browser.port))")
            }
        }
        try await client.shutdown()
        try await upstream.shutdown()
    }

    @Test func pagesAreServed() async throws {
        try await withFrontend { client, base in
            for (path, text) in [("/", "Run your Python analysis"), ("/login", "name=\"password\""), ("/register", "name=\"username\""), ("/static/app.js", "X-CSRF-Token"), ("/static/upload.js", "XMLHttpRequest")] {
                let response = try await client.execute(.init(url: base + path))
                #expect(response.status == 200, "\(path)")
                #expect(String(decoding: response.body, as: UTF8.self).contains(text), "\(path)")
            }
            let example = try await client.execute(.init(url: base + "/static/example-bundle.zip"))
            #expect(example.headers["content-type"] == "application/zip")
            #expect(example.body.starts(with: [0x50, 0x4B, 0x03, 0x04]))
        }
    }

    @Test func jsonRequestsAndStatusesPassThrough() async throws {
        try await withFrontend { client, base in
            let echo = try await client.json("PUT", base + "/api/echo", body: TestServer.Echo(message: "through the proxy", number: 1))
                .decode(TestServer.Echo.self)
            #expect(echo == TestServer.Echo(message: "through the proxy", number: 1, method: "PUT"))
        }
    }

    @Test func uploadsAndDownloadsStreamThroughWithTheirBytes() async throws {
        let work = try TemporaryDirectory()
        let size = 12 * 1024 * 1024 + 5
        let (bytes, expected) = try TestServer.writePatternFile(size: size, to: work.file("bundle.zip"))
        try await withFrontend { client, base in
            let uploaded = try await client.execute(.init(method: "POST", url: base + "/api/upload", body: .file(path: work.file("bundle.zip"))))
            let receipt = try uploaded.decode(TestServer.UploadReceipt.self)
            #expect(receipt.bytes == size && receipt.checksum == expected)

            let downloaded = try await client.execute(.init(url: base + "/api/download?bytes=\(size)", destination: .file(path: work.file("result.zip"))))
            #expect(downloaded.status == 200)
            #expect(downloaded.headers["content-type"] == "application/octet-stream")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: work.file("result.zip"))) == Data(bytes))
    }

    @Test func errorsOfTheBackendKeepTheirStatusAndBody() async throws {
        try await withFrontend { client, base in
            let response = try await client.execute(.init(url: base + "/api/missing"))
            #expect(response.status == 404)
            #expect(String(decoding: response.body, as: UTF8.self).contains("job.not_found"))
        }
    }

    @Test func anUnreachableBackendIsA502ThatSaysSo() async throws {
        let client = HTTPClient()
        let backendURL = "http://127.0.0.1:\(try unusedPort())"
        let proxy = BackendProxy(backendURL: backendURL, client: HTTPClient(), logger: Logger(label: "test"))
        let pages = try await Pages.load(backendURL: backendURL, client: client, logger: Logger(label: "test"))
        try await Application(router: buildFrontendRouter(proxy: proxy, pages: pages)).test(.router) { browser in
            try await browser.execute(uri: "/api/v1/jobs", method: .get) { response in
                #expect(response.status == .badGateway)
                #expect(String(buffer: response.body).contains("backend.unavailable"))
            }
        }
        try await client.shutdown()
    }
}
