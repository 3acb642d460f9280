import CCurl

/// One libcurl easy handle. It keeps its connection cache between transfers, which is what makes
/// consecutive requests reuse a keep-alive connection.
final class CurlEasyHandle: @unchecked Sendable {
    // Sendable invariant: a handle is used by one transfer at a time; HTTPClient takes it from its
    // idle stack (under a Mutex) for the transfer and puts it back afterwards.
    let pointer: UnsafeMutableRawPointer

    init() {
        // curl_easy_init returns NULL only when memory is exhausted.
        pointer = curl_easy_init()!
    }

    deinit {
        curl_easy_cleanup(pointer)
    }

    /// curl_global_init must run once, before any other thread uses libcurl.
    private static let libraryInitialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()

    static func initializeLibrary() {
        precondition(libraryInitialized, "libcurl could not be initialized")
    }
}
