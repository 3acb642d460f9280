import FerryHTTPClient
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// How long the proxy lets a transfer take. A browser that stops sending its upload or taking its
/// download for `idle` is cut off, a transfer slower than 1 KiB/s for a minute too, and nothing
/// takes longer than `total`: a slow client cannot pin the threads that move data to the Backend.
struct ProxyTimeouts: Sendable {
    var idle: Duration = .seconds(60)
    var total: Duration = .seconds(4 * 3600)
}

/// Passes requests to the Backend with their bodies streaming both ways: an upload flows through a
/// bounded pipe while it arrives, and a result download flows back chunk by chunk. Requests with a
/// body (uploads) use a client of their own, so uploads that hang can never hold up the API calls
/// of the pages, which use another (and the pages' own calls a third, `Pages.client`).
struct BackendProxy: Sendable {
    let backendURL: String
    /// Requests without a body: listing jobs, logs, downloads.
    let client: HTTPClient
    /// Requests with a body: uploads and other changes.
    let uploads: HTTPClient
    var timeouts = ProxyTimeouts()
    let logger: Logger

    init(backendURL: String, client: HTTPClient, uploads: HTTPClient? = nil, timeouts: ProxyTimeouts = ProxyTimeouts(), logger: Logger) {
        self.backendURL = backendURL
        self.client = client
        self.uploads = uploads ?? client
        self.timeouts = timeouts
        self.logger = logger
    }

    /// Headers that describe one hop, not the message; they are never forwarded. The forwarding
    /// headers are the proxy's own to set.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "proxy-authorization", "expect",
        "x-forwarded-for", "x-forwarded-host",
    ]

    /// `X-Forwarded-For` as the Backend should see it: what came with the request, then the peer.
    static func forwardedFor(_ request: Request, peer: String?) -> String {
        let earlier = request.headers[HTTPField.Name("X-Forwarded-For")!].map { $0 + ", " } ?? ""
        return earlier + (peer ?? "unknown")
    }

    /// Whether the path holds a `.` or `..` segment, also percent-encoded, an encoded slash or a
    /// backslash: such a path could name another route of the Backend than the one it seems to.
    static func isAmbiguous(_ path: String) -> Bool {
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            let decoded = segment.removingPercentEncoding ?? String(segment)
            if decoded == "." || decoded == ".." || decoded.contains("/") || decoded.contains("\\") || segment.contains("\\") { return true }
        }
        return false
    }

    func forward(_ request: Request, context: FerryRequestContext) async throws -> Response {
        guard !Self.isAmbiguous(request.uri.path) else {
            throw APIError(.badRequest, code: "request.bad_path", message: "The path has `.` or `..` segments or escaped slashes; ask for the resource by its plain path.")
        }
        let url = backendURL + request.uri.description
        var headers: [(name: String, value: String)] = request.headers
            .filter { !Self.hopByHop.contains($0.name.canonicalName) && $0.name != .contentLength }
            .map { ($0.name.rawName, $0.value) }
        headers.append(("X-Forwarded-Proto", request.uri.scheme?.rawValue ?? "http"))
        headers.append(("X-Forwarded-For", Self.forwardedFor(request, peer: context.peerAddress)))
        if let authority = request.head.authority { headers.append(("X-Forwarded-Host", authority)) }
        let length = request.headers[.contentLength].flatMap { Int64($0) }
        let hasBody = (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
        let upload = ChunkPipe(idleTimeout: timeouts.idle)
        let body: FerryHTTPClient.HTTPRequest.Body = hasBody ? .stream(upload, length: length) : .none
        var outgoing = FerryHTTPClient.HTTPRequest(method: request.method.rawValue, url: url, headers: headers, body: body, timeout: timeouts.total)
        outgoing.lowSpeed = (bytesPerSecond: 1024, seconds: 60)
        let transport = hasBody ? uploads : client

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
                upstream = try await transport.stream(outgoing, idleTimeout: timeouts.idle)
            } catch let error as HTTPClientError where error.code == .stalled || error.code == .timedOut {
                upload.close()
                group.cancelAll()
                throw APIError(.requestTimeout, code: "request.too_slow", message: "The upload stopped arriving or was too slow, so Ferry stopped waiting for it. Try again on a steadier connection.")
            } catch {
                upload.close()
                group.cancelAll()
                logger.warning("backend unreachable", metadata: ["error": "\(error)"])
                throw APIError(.badGateway, code: "backend.unavailable", message: "Ferry's backend is not answering right now; try again in a moment.")
            }
            upload.close()  // the Backend answered: it reads no more of the upload
            group.cancelAll()
            try? await group.waitForAll()
            var responseHeaders = HTTPFields()
            for (name, value) in upstream.headers where !Self.hopByHop.contains(name) && name != "content-length" && name != "date" && name != "server" {
                if let field = HTTPField.Name(name) { responseHeaders[field] = value }
            }
            // A download's length goes through, so the browser shows its progress and the time left
            // (a body that ends short is then cut off, as it would be without it).
            let length = request.method == .get && upstream.status == 200 ? upstream.headers["content-length"].flatMap { Int($0) } : nil
            let pipe = upstream.body
            return Response(status: .init(code: upstream.status), headers: responseHeaders, body: ResponseBody(contentLength: length) { writer in
                defer { pipe.close() }
                while let chunk = try await pipe.read() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                try await writer.finish(nil)
            })
        }
    }
}
