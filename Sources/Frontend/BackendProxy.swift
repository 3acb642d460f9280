import FerryHTTPClient
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Passes requests to the Backend with their bodies streaming both ways: an upload flows through a
/// bounded pipe while it arrives, and a result download flows back chunk by chunk.
struct BackendProxy: Sendable {
    let backendURL: String
    let client: HTTPClient
    let logger: Logger

    /// Headers that describe one hop, not the message; they are never forwarded.
    static let hopByHop: Set<String> = ["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "proxy-authorization", "expect"]

    func forward(_ request: Request, context: some RequestContext) async throws -> Response {
        let url = backendURL + request.uri.description
        var headers: [(name: String, value: String)] = request.headers
            .filter { !Self.hopByHop.contains($0.name.canonicalName) && $0.name != .contentLength }
            .map { ($0.name.rawName, $0.value) }
        headers.append(("X-Forwarded-Proto", request.uri.scheme?.rawValue ?? "http"))
        let length = request.headers[.contentLength].flatMap { Int64($0) }
        let hasBody = (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
        let upload = ChunkPipe()
        let body: FerryHTTPClient.HTTPRequest.Body = hasBody ? .stream(upload, length: length) : .none

        return try await withThrowingTaskGroup(of: Void.self) { group in
            if hasBody {
                group.addTask {
                    do {
                        for try await buffer in request.body { try await upload.write(Array(buffer: buffer)) }
                        upload.finish()
                    } catch {
                        upload.finish(throwing: error)
                    }
                }
            }
            let upstream: HTTPStreamedResponse
            do {
                upstream = try await client.stream(.init(method: request.method.rawValue, url: url, headers: headers, body: body, timeout: nil))
            } catch {
                upload.close()
                group.cancelAll()
                logger.warning("backend unreachable", metadata: ["error": "\(error)"])
                throw APIError(.badGateway, code: "backend.unavailable", message: "Ferry's backend is not answering right now; try again in a moment.")
            }
            upload.close()  // the Backend answered: it reads no more of the upload
            try await group.waitForAll()
            var responseHeaders = HTTPFields()
            for (name, value) in upstream.headers where !Self.hopByHop.contains(name) && name != "content-length" && name != "date" && name != "server" {
                if let field = HTTPField.Name(name) { responseHeaders[field] = value }
            }
            let pipe = upstream.body
            return Response(status: .init(code: upstream.status), headers: responseHeaders, body: ResponseBody { writer in
                defer { pipe.close() }
                while let chunk = try await pipe.read() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                try await writer.finish(nil)
            })
        }
    }
}
