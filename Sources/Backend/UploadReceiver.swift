import FerryService
import Foundation
import Hummingbird
import MultipartKit
import NIOCore
import NIOPosix
import Synchronization

/// Streams an upload to a file as it arrives, so the Backend's memory does not grow with its size:
/// a `multipart/form-data` body's `bundle` field, or a raw `application/zip` body.
struct UploadReceiver: Sendable {
    let directory: String
    let maxBytes: Int
    let threads: NIOThreadPool

    struct Upload: Sendable {
        var path: String
        var fileName: String?
        /// Small form fields (`timeLimit`, `memoryLimit`).
        var fields: [String: String]
        var bytes: Int
    }

    func receive(_ request: Request) async throws -> Upload {
        let contentType = request.headers[.contentType] ?? ""
        let file = try await UploadFile.create(in: directory, threads: threads)
        do {
            if contentType.lowercased().hasPrefix("multipart/form-data") {
                return try await receiveMultipart(request, contentType: contentType, into: file)
            }
            if contentType.lowercased().hasPrefix("application/zip") || contentType.lowercased().hasPrefix("application/octet-stream") {
                for try await buffer in request.body { try await file.append(buffer, limit: maxBytes) }
                try await file.finish()
                let name = request.headers[.contentDisposition].flatMap { Self.parameter("filename", in: $0) }
                return Upload(path: file.path, fileName: name, fields: [:], bytes: file.bytes)
            }
            throw APIError(.unsupportedMediaType, code: "upload.unsupported_type", message: "Send the zip as multipart/form-data in a file field named bundle, or as the request body with Content-Type: application/zip.")
        } catch {
            await file.discard()
            throw error
        }
    }

    private func receiveMultipart(_ request: Request, contentType: String, into file: UploadFile) async throws -> Upload {
        guard let boundary = Self.parameter("boundary", in: contentType) else {
            throw APIError(.badRequest, code: "upload.no_boundary", message: "The multipart Content-Type has no boundary.")
        }
        let parser = MultipartParser(boundary: boundary)
        var headers: [String: String] = [:]
        var pending: [ByteBuffer] = []
        var fields: [String: String] = [:]
        var fileName: String?
        var sawBundle = false
        // Everything besides the bundle is bounded: a form of a million tiny fields, a field of a
        // gigabyte or endless part headers would otherwise all sit in the Backend's memory.
        var problem: APIError?
        var parts = 0, headerBytes = 0, bundleParts = 0
        var partIsBundle = false
        func currentName() -> String? { headers["content-disposition"].flatMap { Self.parameter("name", in: $0) } }
        parser.onHeader = { name, value in
            headerBytes += name.utf8.count + value.utf8.count
            if headerBytes > Self.maxHeaderBytes { problem = problem ?? Self.tooManyFields }
            if headers.count < 16 { headers[name.lowercased()] = value }
        }
        parser.onBody = { buffer in
            guard problem == nil, let name = currentName() else { return }
            if name == "bundle" {
                if !partIsBundle {
                    partIsBundle = true
                    bundleParts += 1
                    if bundleParts > 1 { problem = APIError(.badRequest, code: "upload.duplicate_bundle", message: "The form has more than one bundle field; attach one zip.") }
                }
                sawBundle = true
                fileName = fileName ?? headers["content-disposition"].flatMap { Self.parameter("filename", in: $0) }
                pending.append(buffer)
            } else {
                guard name.utf8.count <= 64, fields[name] != nil || fields.count < Self.maxFields else {
                    problem = problem ?? Self.tooManyFields
                    return
                }
                let text = buffer.readString(length: buffer.readableBytes) ?? ""
                fields[name, default: ""] += text
                if fields[name]!.utf8.count > 1024 {
                    problem = problem ?? APIError(.badRequest, code: "upload.field_too_long", message: "A form field other than bundle is longer than 1024 bytes.")
                }
            }
        }
        parser.onPartComplete = {
            headers = [:]
            headerBytes = 0
            partIsBundle = false
            parts += 1
            if parts > Self.maxFields + 1 { problem = problem ?? Self.tooManyFields }
        }
        for try await buffer in request.body {
            try parser.execute(buffer)
            if let problem { throw problem }
            for chunk in pending { try await file.append(chunk, limit: maxBytes) }
            pending.removeAll(keepingCapacity: true)
        }
        guard sawBundle else {
            throw APIError(.unprocessableContent, code: "upload.missing_bundle", message: "The form has no file field named bundle; attach the project's zip as bundle.")
        }
        try await file.finish()
        return Upload(path: file.path, fileName: fileName, fields: fields.mapValues { $0.trimmingCharacters(in: .whitespacesAndNewlines) }, bytes: file.bytes)
    }

    /// Form fields besides the bundle (the job's limits and a few to spare), and bytes of one part's headers.
    static let maxFields = 16
    static let maxHeaderBytes = 8192
    static let tooManyFields = APIError(
        .badRequest, code: "upload.too_many_fields",
        message: "The form has too many fields or too long part headers; send the bundle and at most \(maxFields) small fields (timeLimit, memoryLimit)."
    )

    /// A parameter of a header value: `boundary` in `multipart/form-data; boundary=x`, quoted or not.
    static func parameter(_ name: String, in header: String) -> String? {
        for part in header.split(separator: ";").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == name else { continue }
            var value = pair[1]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }
}

/// A file being written from the request's buffers; writes run on NIO's thread pool.
final class UploadFile: Sendable {
    let path: String
    private let descriptor: Int32
    private let threads: NIOThreadPool
    private let written = Mutex(0)

    var bytes: Int { written.withLock { $0 } }

    private init(path: String, descriptor: Int32, threads: NIOThreadPool) {
        self.path = path
        self.descriptor = descriptor
        self.threads = threads
    }

    static func create(in directory: String, threads: NIOThreadPool) async throws -> UploadFile {
        let path = directory + "/.upload-\(UUID().uuidString).zip"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw APIError(.internalServerError, code: "upload.storage", message: "The upload cannot be stored right now; try again later.")
        }
        return UploadFile(path: path, descriptor: descriptor, threads: threads)
    }

    func append(_ buffer: ByteBuffer, limit: Int) async throws {
        let total = written.withLock { $0 += buffer.readableBytes; return $0 }
        guard total <= limit else {
            throw APIError(.contentTooLarge, code: "upload.too_large", message: "The upload is larger than the limit of \(limit / (1 << 20)) MiB. Leave large data sets out of the bundle.")
        }
        let descriptor = descriptor
        try await threads.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let count = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), code: "upload.storage", message: "The upload cannot be stored: \(String(cString: strerror(errno))).") }
                    offset += count
                }
            }
        }
    }

    /// Flushes the file to disk and closes it.
    func finish() async throws {
        let descriptor = descriptor
        try await threads.runIfActive {
            guard fsync(descriptor) == 0 else { throw APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), code: "upload.storage", message: "The upload cannot be stored.") }
            close(descriptor)
        }
    }

    func discard() async {
        close(descriptor)
        unlink(path)
    }
}
