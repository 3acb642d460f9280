/// Why an upload is not a bundle Ferry can run: a stable code for scripts (`bundle.missing_code_py`),
/// a message for the researcher that names the file or line and says how to fix it.
public struct BundleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
