import FerryHTTPClient
import FerryTestSupport
import FerryZip
import Foundation
import Testing

/// A job as the public API returns it.
struct APIJob: Decodable, Sendable {
    var id: String
    var project: String
    var owner: String
    var status: String
    var exitCode: Int32?
    var reason: String?
    var resultBytes: Int64?
}

struct APIJobPage: Decodable, Sendable {
    var jobs: [APIJob]
    var next: String?
}

/// Where the public API answers: the processes' Stack, or the compose stack's published port.
protocol PublicAPI: Sendable {
    var client: HTTPClient { get }
    /// The base URL of `/api/v1/...`.
    var backendURL: String { get }
    /// What the services said, for a failure's message.
    var logs: String { get }
}

extension Stack: PublicAPI {}

/// A researcher using Ferry's public API with a bearer token, as the README shows with curl.
struct Researcher: Sendable {
    let stack: any PublicAPI
    let token: String

    var auth: [(name: String, value: String)] { [("Authorization", "Bearer \(token)")] }

    static func signUp(_ prefix: String, on stack: any PublicAPI) async throws -> Researcher {
        let name = "\(prefix)-\(UUID().uuidString.prefix(6))"
        let credentials = ["username": name, "password": "a long enough password"]
        try await stack.client.json("POST", stack.backendURL + "/api/v1/auth/register", body: credentials)
        struct Login: Decodable { var token: String }
        let login = try await stack.client.json("POST", stack.backendURL + "/api/v1/auth/login", body: credentials).decode(Login.self)
        return Researcher(stack: stack, token: login.token)
    }

    /// Uploads a zip file; as multipart/form-data (field `bundle`) like the web page, or as a raw body like curl --data-binary.
    /// `path` is where it goes: a job (`/api/v1/jobs`) or a sweep (`/api/v1/sweeps`).
    func upload(_ zip: String, fileName: String, multipart: Bool = true, fields: [String: String] = [:], path: String = "/api/v1/jobs") async throws -> HTTPResponse {
        if !multipart {
            return try await stack.client.execute(HTTPRequest(
                method: "POST", url: stack.backendURL + path,
                headers: auth + [("Content-Type", "application/zip"), ("Content-Disposition", "attachment; filename=\"\(fileName)\"")],
                body: .file(path: zip)
            ))
        }
        let boundary = "ferry-\(UUID().uuidString)"
        var body = Data()
        for (name, value) in fields {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"\(fileName)\"\r\nContent-Type: application/zip\r\n\r\n".utf8)
        body += try Data(contentsOf: URL(fileURLWithPath: zip))
        body += Data("\r\n--\(boundary)--\r\n".utf8)
        return try await stack.client.execute(HTTPRequest(
            method: "POST", url: stack.backendURL + path,
            headers: auth + [("Content-Type", "multipart/form-data; boundary=\(boundary)")], body: .bytes(Array(body))
        ))
    }

    func submit(_ zip: String, fileName: String, multipart: Bool = true, fields: [String: String] = [:]) async throws -> APIJob {
        let response = try await upload(zip, fileName: fileName, multipart: multipart, fields: fields)
        try #require(response.status == 201, "upload answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        return try response.decode(APIJob.self)
    }

    func job(_ id: String) async throws -> HTTPResponse {
        try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)", headers: auth))
    }

    func jobs() async throws -> APIJobPage {
        try await stack.client.json("GET", stack.backendURL + "/api/v1/jobs", headers: auth).decode(APIJobPage.self)
    }

    /// Polls the job until it has finished (what a results page does), at most `seconds`.
    func waitUntilFinished(_ id: String, seconds: Double = 300) async throws -> APIJob {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let job = try await job(id).decode(APIJob.self)
            if ["succeeded", "failed", "timed_out", "killed", "canceled", "error"].contains(job.status) { return job }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("job \(id) did not finish within \(seconds) s; services said:\n\(stack.logs)")
        throw CancellationError()
    }

    func log(_ id: String, stream: String) async throws -> String {
        let response = try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)/log?stream=\(stream)&offset=0", headers: auth))
        return String(decoding: response.body, as: UTF8.self)
    }

    /// Downloads the result zip and returns each file's content by name.
    func result(_ id: String, into directory: TemporaryDirectory) async throws -> [String: String] {
        let path = directory.file("\(id)-result.zip")
        let response = try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)/result", headers: auth, destination: .file(path: path)))
        try #require(response.status == 200, "result answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        #expect(response.headers["content-type"] == "application/zip")
        let reader = try ZipReader(path: path)
        var files: [String: String] = [:]
        for entry in reader.entries where entry.kind == .file {
            files[entry.name] = String(decoding: try reader.contents(of: entry, maxBytes: 1 << 20), as: UTF8.self)
        }
        return files
    }
}
