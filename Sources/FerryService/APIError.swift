import Hummingbird

/// An error answered as DESIGN.md's JSON shape: `{"error": {"code", "message", "details"}}`.
/// `code` is stable for scripts; `message` tells a person what to fix.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public let details: [String: String]?

    public init(_ status: HTTPResponse.Status, code: String, message: String, details: [String: String]? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    private struct Body: Encodable {
        struct Content: Encodable {
            let code: String
            let message: String
            let details: [String: String]?
        }
        let error: Content
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try context.responseEncoder.encode(Body(error: .init(code: code, message: message, details: details)), from: request, context: context)
        response.status = status
        return response
    }

    /// The same job id for another user's job as for a missing one: nobody learns what exists.
    public static func jobNotFound(_ id: String) -> APIError {
        APIError(.notFound, code: "job.not_found", message: "There is no job \(id).")
    }
}
