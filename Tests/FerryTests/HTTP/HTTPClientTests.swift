import FerryHTTPClient
import FerryTestSupport
import Foundation
import HummingbirdTesting
import Testing

@Suite("HTTP client over libcurl against a local Hummingbird server")
struct HTTPClientTests {
    /// Runs `body` with a client and the base URL of a live test server.
    /// The client has no default timeout, so a `timedOut` error can only come from the request's own.
    private func withServer(_ body: @escaping @Sendable (HTTPClient, String) async throws -> Void) async throws {
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(2), defaultTimeout: nil))
        do {
            try await TestServer.application().test(.live) { testClient in
                try await body(client, "http://127.0.0.1:\(try #require(testClient.port))")
            }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    @Test func jsonWithEveryMethod() async throws {
        try await withServer { client, base in
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                let sent = TestServer.Echo(message: "hello \(method)", number: 7)
                let echo = try await client.json(method, base + "/echo", body: sent).decode(TestServer.Echo.self)
                #expect(echo == TestServer.Echo(message: sent.message, number: 7, method: method))
            }
            let get = try await client.json("GET", base + "/echo").decode(TestServer.Echo.self)
            #expect(get.method == "GET")
            let head = try await client.execute(.init(method: "HEAD", url: base + "/echo"))
            #expect(head.status == 200 && head.body.isEmpty)
        }
    }

    @Test func errorStatusesCarryTheServersMessage() async throws {
        try await withServer { client, base in
            let response = try await client.execute(.init(url: base + "/missing"))
            #expect(response.status == 404)
            #expect(response.headers["content-type"] == "application/json")
            let error = await #expect(throws: HTTPClientError.self) { try await client.json("GET", base + "/missing") }
            #expect(error?.code == .status)
            #expect(error?.status == 404)
            #expect(error?.message.contains("no such job") == true)
        }
    }

    @Test func streamsARequestBodyFromAFile() async throws {
        let work = try TemporaryDirectory()
        let size = 20 * 1024 * 1024 + 123
        let (_, expected) = try TestServer.writePatternFile(size: size, to: work.file("bundle.zip"))
        try await withServer { client, base in
            let response = try await client.execute(.init(method: "POST", url: base + "/upload", headers: [("Content-Type", "application/zip")], body: .file(path: work.file("bundle.zip"))))
            let receipt = try response.decode(TestServer.UploadReceipt.self)
            #expect(receipt.bytes == size)
            #expect(receipt.checksum == expected)
        }
    }

    @Test func streamsAResponseBodyToAFile() async throws {
        let work = try TemporaryDirectory()
        let size = 20 * 1024 * 1024 + 7
        try await withServer { client, base in
            let response = try await client.execute(.init(url: base + "/download?bytes=\(size)", destination: .file(path: work.file("result.zip"))))
            #expect(response.status == 200)
            #expect(response.body.isEmpty)  // it went to the file, not to memory
            #expect(response.bodyBytes == Int64(size))
        }
        let received = try Data(contentsOf: URL(fileURLWithPath: work.file("result.zip")))
        #expect(received.count == size)
        #expect(received == Data((0..<size).map(TestServer.patternByte)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path) == ["result.zip"])  // no temporary left
    }

    @Test func errorResponsesAreNotWrittenToTheDestinationFile() async throws {
        let work = try TemporaryDirectory()
        try await withServer { client, base in
            let response = try await client.execute(.init(url: base + "/missing", destination: .file(path: work.file("result.zip"))))
            #expect(response.status == 404)
            #expect(String(decoding: response.body, as: UTF8.self).contains("no such job"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path).isEmpty)
    }

    @Test func timeoutEndsASlowRequestWithAClearError() async throws {
        try await withServer { client, base in
            // /slow answers after 3 s; the request gives up at 300 ms instead of succeeding.
            let error = await #expect(throws: HTTPClientError.self) {
                try await client.execute(.init(url: base + "/slow", timeout: .milliseconds(300)))
            }
            #expect(error?.code == .timedOut)
            #expect(error?.message.contains("/slow") == true)
        }
    }

    @Test func consecutiveRequestsReuseTheConnection() async throws {
        try await withServer { client, base in
            let first = try await client.execute(.init(url: base + "/echo"))
            let second = try await client.execute(.init(url: base + "/echo"))
            let third = try await client.execute(.init(method: "POST", url: base + "/echo", body: .bytes(Array(#"{"message":"m","number":1}"#.utf8))))
            #expect(first.newConnections == 1)
            #expect(second.newConnections == 0)
            #expect(third.newConnections == 0)
        }
    }

    @Test func oversizedResponsesInMemoryAreRefused() async throws {
        try await withServer { client, base in
            let error = await #expect(throws: HTTPClientError.self) {
                try await client.execute(.init(url: base + "/download?bytes=100000", destination: .memory(maxBytes: 1000)))
            }
            #expect(error?.code == .responseTooLarge)
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        try await withServer { client, base in
            let task = Task { try await client.execute(.init(url: base + "/slow")) }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            // Without cancellation the request would succeed after 3 s.
            let error = await #expect(throws: HTTPClientError.self) { try await task.value }
            #expect(error?.code == .cancelled)
        }
    }

    @Test func unreachableServiceAndBadURLsSayWhatFailed() async throws {
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(2)))
        let port = try unusedPort()
        let refused = await #expect(throws: HTTPClientError.self) { try await client.execute(.init(url: "http://127.0.0.1:\(port)/health")) }
        #expect(refused?.code == .connectFailed)
        #expect(refused?.message.contains("127.0.0.1:\(port)") == true)
        let invalid = await #expect(throws: HTTPClientError.self) { try await client.execute(.init(url: "file:///etc/passwd")) }
        #expect(invalid?.code == .invalidRequest)
        let missingFile = await #expect(throws: HTTPClientError.self) {
            try await client.execute(.init(method: "POST", url: "http://127.0.0.1:\(port)/upload", body: .file(path: "/nonexistent/bundle.zip")))
        }
        #expect(missingFile?.code == .file)
        try await client.shutdown()
    }
}
