/// Why an archive could not be read, extracted or written, in words that say what to fix.
public struct ZipError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case notAZip = "not a zip archive"
            case corrupt = "corrupt archive"
            case encrypted = "encrypted entry"
            case unsafePath = "unsafe path"
            case notRegularFile = "not a regular file"
            case sizeMismatch = "entry larger than declared"
            case limitExceeded = "size limit exceeded"
            case io = "file system error"
            case library = "libzip error"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let notAZip = Code(.notAZip)
        public static let corrupt = Code(.corrupt)
        public static let encrypted = Code(.encrypted)
        public static let unsafePath = Code(.unsafePath)
        public static let notRegularFile = Code(.notRegularFile)
        /// An entry produced more bytes than its header declares: a lying or tampered archive.
        public static let sizeMismatch = Code(.sizeMismatch)
        public static let limitExceeded = Code(.limitExceeded)
        public static let io = Code(.io)
        public static let library = Code(.library)

        public var description: String { value.rawValue }
    }

    public let code: Code
    /// For operators and logs; it may name files on the server.
    public let message: String
    /// What went wrong in words that name no file of the server (libzip's own, for example), for
    /// messages shown to the people who uploaded the archive.
    public let detail: String?

    public init(_ code: Code, _ message: String, detail: String? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    public var description: String { "\(code): \(message)" }
}
