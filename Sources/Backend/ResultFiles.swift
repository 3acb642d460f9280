import FerryContracts
import FerryService
import FerryZip
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import NIOPosix

/// The files in a job's result, and one of them at a time, without unpacking the result: what
/// the job page lists and previews. Everything a job wrote is hostile: entries are looked up by
/// their exact name in the result's directory (nothing is ever joined into a path), reads are
/// capped, and only PNG, JPEG, GIF and SVG are ever served for display (as images; the API's CSP
/// sandbox and `nosniff` hold for all of it); everything else goes as an attachment, or as plain
/// text to the page's script, which shows it escaped.
struct ResultFiles {
    /// What a file is shown as on the job page.
    enum Kind: String, Codable, Sendable {
        case image, table, json, text, other
    }

    struct File: Codable, Sendable, Equatable {
        var name: String
        var size: UInt64
        var kind: Kind
    }

    struct Listing: Codable, Sendable, ResponseEncodable {
        var files: [File]
        /// Files in the result; more than `files` holds when the listing was cut at its limit.
        var total: Int
    }

    /// Files listed at most; the whole result zip has them all.
    static let listLimit = 5_000
    /// The most a preview reads of a text, table or JSON file.
    static let previewBytes = 64 << 10

    static let imageTypes = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "svg": "image/svg+xml"]

    static func kind(of name: String) -> Kind {
        let suffix = (name as NSString).pathExtension.lowercased()
        if imageTypes[suffix] != nil { return .image }
        switch suffix {
        case "csv", "tsv": return .table
        case "json", "geojson": return .json
        case "txt", "log", "md", "out", "err", "py", "r", "yaml", "yml", "toml", "ini", "cfg", "tex", "xml", "html", "htm", "dat": return .text
        default: return .other
        }
    }

    /// A name made safe for a Content-Disposition file name: the last part, plain characters only.
    static func downloadName(_ name: String) -> String {
        let last = name.split(separator: "/").last.map(String.init) ?? "file"
        let safe = String(last.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" }).prefix(120)
        return safe.isEmpty || safe.allSatisfy({ $0 == "." }) ? "file" : String(safe)
    }
}

extension JobsController {
    /// The result of a finished job, or a 409/410 that says why there is none.
    private func resultPath(of job: Job) async throws -> String {
        try await requireFiles(of: job)
        let path = settings.dataDirectory + "/results/\(job.id).zip"
        guard job.status.isFinal, FileManager.default.fileExists(atPath: path) else {
            throw APIError(.conflict, code: "job.no_result", message: "Job \(job.id) has no result to look into (it is \(job.status.rawValue)).")
        }
        return path
    }

    /// `GET /api/v1/jobs/{id}/files`: the files of the result (names, sizes, how they are shown).
    @Sendable func resultFiles(_ request: Request, context: BackendContext) async throws -> ResultFiles.Listing {
        let job = try await ownedJob(context)
        let path = try await resultPath(of: job)
        return try await settings.fileThreads.runIfActive {
            let reader = try ZipReader(path: path, maxEntries: 1_000_000)
            defer { reader.close() }
            let files = reader.entries.filter { $0.kind == .file }.sorted { $0.name < $1.name }
            return ResultFiles.Listing(
                files: files.prefix(ResultFiles.listLimit).map { .init(name: $0.name, size: $0.size, kind: ResultFiles.kind(of: $0.name)) },
                total: files.count
            )
        }
    }

    /// `GET /api/v1/jobs/{id}/file?name=<entry>`: one file of the result, read from the zip alone.
    /// An image is served as itself; anything else as an attachment, streamed a chunk at a time
    /// whatever its size. With `preview=1`, a text, table or JSON file's first 64 KiB as plain text
    /// (`X-Ferry-Truncated: true` when it holds more).
    @Sendable func resultFile(_ request: Request, context: BackendContext) async throws -> Response {
        let job = try await ownedJob(context)
        let query = request.uri.queryParameters
        guard let name = query.get("name"), !name.isEmpty, name.utf8.count <= 4096 else {
            throw APIError(.badRequest, code: "query.missing_name", message: "name must be the path of a file in the result, as /files lists it.")
        }
        let path = try await resultPath(of: job)
        let threads = settings.fileThreads
        let found: (reader: ZipReader, entry: ZipEntry)? = try await threads.runIfActive {
            let reader = try ZipReader(path: path, maxEntries: 1_000_000)
            guard let entry = reader.entries.first(where: { $0.name == name && $0.kind == .file }) else {
                reader.close()
                return nil
            }
            return (reader, entry)
        }
        guard let (reader, entry) = found else {
            throw APIError(.notFound, code: "job.no_such_file", message: "The result of job \(job.id) has no file by that name.")
        }
        var headers: HTTPFields = [.cacheControl: "private, no-store"]
        let suffix = (name as NSString).pathExtension.lowercased()
        if query.get("preview") != nil && ResultFiles.kind(of: name) != .image {
            let read = try await threads.runIfActive {
                defer { reader.close() }
                return try reader.prefix(of: entry, maxBytes: ResultFiles.previewBytes)
            }
            headers[.contentType] = "text/plain; charset=utf-8"
            headers[HTTPField.Name("X-Ferry-Truncated")!] = read.truncated ? "true" : "false"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: read.bytes)))
        }
        if query.get("download") == nil, let type = ResultFiles.imageTypes[suffix] {
            // Shown as an image only: the page puts it in <img>, where an SVG's scripts never run,
            // and opened directly the API's sandboxing CSP keeps them from running too.
            headers[.contentType] = type
            headers[.contentDisposition] = "inline; filename=\"\(ResultFiles.downloadName(name))\""
        } else {
            headers[.contentType] = "application/octet-stream"
            headers[.contentDisposition] = "attachment; filename=\"\(ResultFiles.downloadName(name))\""
        }
        let contents: EntryStream
        do {
            contents = try await threads.runIfActive { try reader.openContents(entry) }
        } catch {
            reader.close()
            throw error
        }
        let body = ResponseBody(contentLength: Int(exactly: entry.size)) { writer in
            // The entry's stream first: it reads through the reader's archive.
            defer { contents.close(); reader.close() }
            try await contents.send(to: &writer, reading: threads)
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

extension EntryStream {
    /// Sends the rest of the entry to a response, a chunk at a time, each read on `threads` (libzip
    /// blocks): a single file's download and the sweep's combined zip.
    func send(to writer: inout any ResponseBodyWriter, reading threads: NIOThreadPool) async throws {
        while true {
            let chunk = try await threads.runIfActive { try self.read() }
            if chunk.isEmpty { return }
            try await writer.write(ByteBuffer(bytes: chunk))
        }
    }
}
