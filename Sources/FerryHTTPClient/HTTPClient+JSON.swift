import FerryContracts
import Foundation

extension HTTPClient {
    /// Sends `body` as JSON (if any) and returns the response; the body of a 2xx response decodes with
    /// `HTTPResponse.decode(_:)`, any other status throws `HTTPClientError.Code.status` with the server's text.
    @discardableResult
    public func json(
        _ method: String, _ url: String, body: (any Encodable)? = nil, headers: [(name: String, value: String)] = [],
        timeout: Duration? = nil
    ) async throws -> HTTPResponse {
        var allHeaders = headers + [("Accept", "application/json")]
        var requestBody = HTTPRequest.Body.none
        if let body {
            allHeaders.append(("Content-Type", "application/json"))
            requestBody = .bytes(Array(try JSONEncoder.ferry().encode(body)))
        }
        let response = try await execute(HTTPRequest(method: method, url: url, headers: allHeaders, body: requestBody, timeout: timeout))
        guard response.isSuccess else {
            let text = String(decoding: response.body.prefix(2048), as: UTF8.self)
            throw HTTPClientError(.status, "\(method) \(url) answered \(response.status): \(text)", status: response.status)
        }
        return response
    }
}

extension HTTPResponse {
    /// Decodes the JSON body.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder.ferry().decode(T.self, from: Data(body))
    }
}
