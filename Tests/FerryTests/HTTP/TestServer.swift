import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore

/// A local Hummingbird server with the routes the HTTP client tests call.
enum TestServer {
    struct Echo: Codable, Equatable, ResponseEncodable {
        var message: String
        var number: Int
        var method: String?
    }

    struct UploadReceipt: Codable, ResponseEncodable {
        var bytes: Int
        var checksum: UInt64
    }

    /// The byte at `index` of every generated download.
    static func patternByte(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index % 251) }

    /// Writes `size` pattern bytes to `path`; returns them and the checksum the server will compute.
    static func writePatternFile(size: Int, to path: String) throws -> (bytes: [UInt8], checksum: UInt64) {
        let bytes = (0..<size).map(patternByte)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var sum: UInt64 = 0
        checksum(bytes, startingAt: &sum)
        return (bytes, sum)
    }

    static func checksum(_ bytes: some Sequence<UInt8>, startingAt start: inout UInt64) {
        for byte in bytes { start = (start &* 31) &+ UInt64(byte) }
    }

    static func application() -> some ApplicationProtocol {
        let router = Router()
        // Every route also under /api, for the Frontend's proxy tests.
        for prefix in ["", "/api"] {
            for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
                router.on(RouterPath(prefix + "/echo"), method: method) { request, context -> Echo in
                    var echo = try await request.decode(as: Echo.self, context: context)
                    echo.method = request.method.rawValue
                    return echo
                }
            }
            router.get(RouterPath(prefix + "/echo")) { request, _ in Echo(message: "get", number: 0, method: request.method.rawValue) }
            router.head(RouterPath(prefix + "/echo")) { _, _ in HTTPResponse.Status.ok }
            router.post(RouterPath(prefix + "/upload")) { request, _ -> UploadReceipt in
                var bytes = 0
                var checksum: UInt64 = 0
                for try await buffer in request.body {
                    bytes += buffer.readableBytes
                    buffer.withUnsafeReadableBytes { TestServer.checksum($0, startingAt: &checksum) }
                }
                return UploadReceipt(bytes: bytes, checksum: checksum)
            }
            router.get(RouterPath(prefix + "/download")) { request, _ -> Response in
                let total = request.uri.queryParameters.get("bytes", as: Int.self) ?? 0
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(contentLength: total) { writer in
                    var sent = 0
                    while sent < total {
                        let count = min(256 * 1024, total - sent)
                        var buffer = ByteBuffer()
                        buffer.writeBytes((sent..<sent + count).map(TestServer.patternByte))
                        try await writer.write(buffer)
                        sent += count
                    }
                    try await writer.finish(nil)
                })
            }
            router.get(RouterPath(prefix + "/slow")) { _, _ -> String in
                try await Task.sleep(for: .seconds(3))
                return "too late"
            }
            router.get(RouterPath(prefix + "/missing")) { _, _ -> Response in
                Response(status: .notFound, headers: [.contentType: "application/json"],
                         body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":{"code":"job.not_found","message":"no such job"}}"#)))
            }
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }
}
