import FerryContracts
import Foundation
import Hummingbird

/// Reads a JSON request body, and only one that says it is JSON: a route that decodes JSON refuses
/// any other Content-Type with 415, so that a cross-site `text/plain` form that happens to hold JSON
/// (which a browser sends without asking) is never taken for an API call. Dates are FerryDate's.
public struct FerryJSONRequestDecoder: RequestDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        guard Self.isJSON(request.headers[.contentType]) else {
            throw APIError(.unsupportedMediaType, code: "request.not_json", message: "Send the body as JSON with Content-Type: application/json.")
        }
        let body = try await request.body.collect(upTo: min(context.maxUploadSize, 1 << 20))
        do {
            return try JSONDecoder.ferry().decode(T.self, from: body)
        } catch let error as DecodingError {
            throw APIError(.badRequest, code: "request.invalid_json", message: "The JSON body cannot be read: \(Self.describe(error)).")
        }
    }

    /// `application/json` or a `+json` type, with or without parameters (`; charset=utf-8`).
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return media == "application/json" || (media.hasPrefix("application/") && media.hasSuffix("+json"))
    }

    /// Which field was wrong, in words (never the decoder's internals).
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let names = context.codingPath.map(\.stringValue).filter { !$0.isEmpty }
            return names.isEmpty ? "the body" : names.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, _): return "\(key.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type"
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "it is not valid JSON" : "\(path(context)) is not valid"
        @unknown default: return "it is not what this route expects"
        }
    }
}
