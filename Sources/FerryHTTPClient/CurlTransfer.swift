import CCurl
import Foundation
import Synchronization

/// One request in flight: the options it sets on an easy handle, and the state its callbacks fill in.
final class CurlTransfer: @unchecked Sendable {
    // Sendable invariant: every `var` is touched only by the thread running `perform` (libcurl calls
    // the callbacks on that thread); `cancelled` is atomic and may be set from any thread.
    private let request: HTTPRequest
    private let timeout: Duration?
    private let connectTimeout: Duration
    private let cancelled = Atomic<Bool>(false)
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    private var status = 0
    private var headers: [String: String] = [:]
    private var body: [UInt8] = []
    private var bodyBytes: Int64 = 0
    private var failure: HTTPClientError?
    private var upload: Int32 = -1
    private var download: (descriptor: Int32, temporary: String)?
    /// Called once, when the final response head (status and headers) is complete.
    private let onHead: (@Sendable (Int, [String: String]) -> Void)?
    private var headDelivered = false

    init(request: HTTPRequest, configuration: HTTPClient.Configuration, onHead: (@Sendable (Int, [String: String]) -> Void)? = nil) throws {
        self.onHead = onHead
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            throw HTTPClientError(.invalidRequest, "\(request.url) is not an http:// or https:// URL")
        }
        self.request = request
        self.timeout = request.timeout ?? configuration.defaultTimeout
        self.connectTimeout = configuration.connectTimeout
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        errorBuffer.deallocate()
    }

    func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }

    func perform(on handle: CurlEasyHandle) throws -> HTTPResponse {
        let curl = handle.pointer
        curl_easy_reset(curl)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer {
            curl_slist_free_all(headerList)
            if upload >= 0 { close(upload) }
        }
        do {
            try configure(curl, headerList: &headerList)
            if cancelled.load(ordering: .relaxed) { throw HTTPClientError(.cancelled, "\(request.method) \(request.url) was cancelled") }
            let code = curl_easy_perform(curl)
            if code != CURLE_OK { throw transportError(code) }
            var responseCode = 0
            ferry_curl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &responseCode)
            var connects = 0
            ferry_curl_getinfo_long(curl, CURLINFO_NUM_CONNECTS, &connects)
            try finishDownload()
            return HTTPResponse(status: responseCode, headers: headers, body: body, bodyBytes: bodyBytes, newConnections: connects)
        } catch {
            discardDownload()
            throw error
        }
    }

    // MARK: - Options

    private func configure(_ curl: UnsafeMutableRawPointer, headerList: inout UnsafeMutablePointer<curl_slist>?) throws {
        let context = Unmanaged.passUnretained(self).toOpaque()
        try check(ferry_curl_setopt_string(curl, CURLOPT_URL, request.url), "URL")
        try check(ferry_curl_setopt_string(curl, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
        try check(ferry_curl_setopt_long(curl, CURLOPT_NOSIGNAL, 1), "no signals")
        try check(ferry_curl_setopt_long(curl, CURLOPT_TCP_KEEPALIVE, 1), "keep-alive")
        try check(ferry_curl_setopt_pointer(curl, CURLOPT_ERRORBUFFER, errorBuffer), "error buffer")
        try check(ferry_curl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, connectTimeout.milliseconds), "connect timeout")
        try check(ferry_curl_setopt_long(curl, CURLOPT_TIMEOUT_MS, timeout?.milliseconds ?? 0), "timeout")
        if let lowSpeed = request.lowSpeed {
            try check(ferry_curl_setopt_long(curl, CURLOPT_LOW_SPEED_LIMIT, lowSpeed.bytesPerSecond), "low speed limit")
            try check(ferry_curl_setopt_long(curl, CURLOPT_LOW_SPEED_TIME, lowSpeed.seconds), "low speed time")
        }
        try check(ferry_curl_setopt_data_callback(curl, CURLOPT_WRITEFUNCTION, curlWriteBody), "write callback")
        try check(ferry_curl_setopt_pointer(curl, CURLOPT_WRITEDATA, context), "write data")
        try check(ferry_curl_setopt_data_callback(curl, CURLOPT_HEADERFUNCTION, curlReceiveHeader), "header callback")
        try check(ferry_curl_setopt_pointer(curl, CURLOPT_HEADERDATA, context), "header data")
        try check(ferry_curl_setopt_long(curl, CURLOPT_NOPROGRESS, 0), "progress")
        try check(ferry_curl_setopt_progress_callback(curl, curlProgress), "progress callback")
        try check(ferry_curl_setopt_pointer(curl, CURLOPT_XFERINFODATA, context), "progress data")

        switch request.body {
        case .none:
            if request.method == "HEAD" {
                try check(ferry_curl_setopt_long(curl, CURLOPT_NOBODY, 1), "HEAD")
            } else if request.method != "GET" {
                try check(ferry_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
        case .bytes(let bytes):
            try check(ferry_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)), "body size")
            try bytes.withUnsafeBytes { buffer in
                // COPYPOSTFIELDS copies the bytes, so the buffer need not outlive this call.
                let base = buffer.baseAddress ?? UnsafeRawPointer(errorBuffer)
                try check(ferry_curl_setopt_pointer(curl, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base)), "body")
            }
            if request.method != "POST" {
                try check(ferry_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
        case .stream(_, let length):
            try check(ferry_curl_setopt_long(curl, CURLOPT_POST, 1), "POST")
            try check(ferry_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length ?? -1)), "body size")
            try check(ferry_curl_setopt_data_callback(curl, CURLOPT_READFUNCTION, curlReadBody), "read callback")
            try check(ferry_curl_setopt_pointer(curl, CURLOPT_READDATA, context), "read data")
            if request.method != "POST" {
                try check(ferry_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
        case .file(let path):
            upload = open(path, O_RDONLY | O_CLOEXEC)
            guard upload >= 0 else {
                throw HTTPClientError(.file, "cannot read the request body \(path): \(String(cString: strerror(errno)))")
            }
            var info = stat()
            fstat(upload, &info)
            try check(ferry_curl_setopt_long(curl, CURLOPT_POST, 1), "POST")
            try check(ferry_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(info.st_size)), "body size")
            try check(ferry_curl_setopt_data_callback(curl, CURLOPT_READFUNCTION, curlReadBody), "read callback")
            try check(ferry_curl_setopt_pointer(curl, CURLOPT_READDATA, context), "read data")
            if request.method != "POST" {
                try check(ferry_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
        }

        // An empty Expect header stops curl from waiting for "100 Continue" before large bodies.
        for (name, value) in request.headers + [("Expect", "")] {
            let line = value.isEmpty ? "\(name):" : "\(name): \(value)"
            guard let appended = curl_slist_append(headerList, line) else {
                throw HTTPClientError(.invalidRequest, "cannot add header \(name)")
            }
            headerList = appended
        }
        try check(ferry_curl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList), "headers")
    }

    private func check(_ code: CURLcode, _ what: String) throws {
        guard code == CURLE_OK else {
            throw HTTPClientError(.invalidRequest, "setting the \(what) of \(request.method) \(request.url): \(String(cString: curl_easy_strerror(code)))")
        }
    }

    private func transportError(_ code: CURLcode) -> HTTPClientError {
        if let failure { return failure }
        let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        let target = "\(request.method) \(request.url)"
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST:
            return HTTPClientError(.connectFailed, "\(target): \(detail); is the service running?")
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPClientError(.timedOut, "\(target): \(detail)")
        case CURLE_ABORTED_BY_CALLBACK where cancelled.load(ordering: .relaxed):
            return HTTPClientError(.cancelled, "\(target) was cancelled")
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return HTTPClientError(.invalidRequest, "\(target): \(detail)")
        default:
            return HTTPClientError(.transferFailed, "\(target): \(detail)")
        }
    }

    // MARK: - Callbacks (on the transfer's thread)

    fileprivate func receiveHeader(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty, status >= 200, !headDelivered {
            // The blank line ends the head of the final (non-1xx) response.
            headDelivered = true
            onHead?(status, headers)
            return
        }
        if trimmed.hasPrefix("HTTP/") {
            // A new status line (after 100 Continue or a redirect) starts a new header block.
            status = Int(trimmed.split(separator: " ").dropFirst().first ?? "") ?? 0
            headers = [:]
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = trimmed[..<colon].lowercased()
        let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers[name] = headers[name].map { "\($0), \(value)" } ?? value
    }

    /// Returns the bytes taken, or 0 to make libcurl abort with CURLE_WRITE_ERROR (after setting `failure`).
    fileprivate func receiveBody(_ buffer: UnsafeRawBufferPointer) -> Int {
        bodyBytes += Int64(buffer.count)
        if case .stream(let pipe) = request.destination {
            do {
                try pipe.blockingWrite(Array(buffer))
                return buffer.count
            } catch is ChunkPipe.Stalled {
                failure = HTTPClientError(.stalled, "\(request.method) \(request.url): the reader of the response took nothing for too long")
                return 0
            } catch {
                failure = HTTPClientError(.cancelled, "\(request.method) \(request.url): the reader of the response went away")
                return 0
            }
        }
        if case .file(let path) = request.destination, (200..<300).contains(status) {
            return writeToFile(buffer, path: path) ? buffer.count : 0
        }
        let limit: Int = if case .memory(let maxBytes) = request.destination { maxBytes } else { 64 * 1024 }
        guard body.count + buffer.count <= limit else {
            if case .memory = request.destination {
                failure = HTTPClientError(.responseTooLarge, "\(request.method) \(request.url): the response is larger than \(limit) bytes")
                return 0
            }
            body.append(contentsOf: buffer.prefix(max(0, limit - body.count)))  // an error page, kept short
            return buffer.count
        }
        body.append(contentsOf: buffer)
        return buffer.count
    }

    fileprivate func readBody(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if case .stream(let pipe, _) = request.body {
            do {
                guard let chunk = try pipe.blockingRead(maxBytes: buffer.count) else { return 0 }
                chunk.withUnsafeBytes { buffer.copyMemory(from: $0) }
                return chunk.count
            } catch is ChunkPipe.Stalled {
                failure = HTTPClientError(.stalled, "\(request.method) \(request.url): the request body stopped arriving")
                return Int(CURL_READFUNC_ABORT)
            } catch {
                failure = HTTPClientError(.transferFailed, "\(request.method) \(request.url): the request body failed: \(error)")
                return Int(CURL_READFUNC_ABORT)
            }
        }
        while true {
            let count = read(upload, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            failure = HTTPClientError(.file, "reading the request body of \(request.url) failed: \(String(cString: strerror(errno)))")
            return Int(CURL_READFUNC_ABORT)
        }
    }

    fileprivate var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    // MARK: - Downloads to a file

    private func writeToFile(_ buffer: UnsafeRawBufferPointer, path: String) -> Bool {
        if download == nil {
            let temporary = path + ".partial-\(UUID().uuidString)"
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                failure = HTTPClientError(.file, "cannot create \(temporary): \(String(cString: strerror(errno)))")
                return false
            }
            download = (descriptor, temporary)
        }
        var offset = 0
        while offset < buffer.count {
            let written = write(download!.descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                failure = HTTPClientError(.file, "writing \(path) failed: \(String(cString: strerror(errno)))")
                return false
            }
            offset += written
        }
        return true
    }

    private func finishDownload() throws {
        guard case .file(let path) = request.destination, (200..<300).contains(status) else { return }
        if download == nil, !writeToFile(UnsafeRawBufferPointer(start: nil, count: 0), path: path) {
            throw failure!
        }
        let (descriptor, temporary) = download!
        close(descriptor)
        download = nil
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HTTPClientError(.file, "cannot move the download to \(path): \(String(cString: strerror(errno)))")
        }
    }

    private func discardDownload() {
        guard let (descriptor, temporary) = download else { return }
        close(descriptor)
        unlink(temporary)
        download = nil
    }
}

private func transfer(_ userdata: UnsafeMutableRawPointer?) -> CurlTransfer {
    Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
}

private let curlWriteBody: ferry_curl_data_callback = { buffer, size, count, userdata in
    transfer(userdata).receiveBody(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private let curlReceiveHeader: ferry_curl_data_callback = { buffer, size, count, userdata in
    let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: size * count), as: UTF8.self)
    transfer(userdata).receiveHeader(line)
    return size * count
}

private let curlReadBody: ferry_curl_data_callback = { buffer, size, count, userdata in
    transfer(userdata).readBody(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

private let curlProgress: ferry_curl_progress_callback = { userdata, _, _, _, _ in
    transfer(userdata).isCancelled ? 1 : 0
}

extension Duration {
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
