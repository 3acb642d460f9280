import FerryHTTPClient
import Foundation

/// A researcher's use of the public API, timed: upload, wait for the end, download the result.
struct BenchClient: Sendable {
    let url: String
    let client: HTTPClient
    let token: String

    struct Job: Decodable { var id: String; var status: String; var reason: String? }

    static func signUp(url: String, client: HTTPClient) async throws -> BenchClient {
        let credentials = ["username": "bench-\(UUID().uuidString.prefix(8))", "password": "benchmark password"]
        try await client.json("POST", url + "/api/v1/auth/register", body: credentials)
        struct Login: Decodable { var token: String }
        let login = try await client.json("POST", url + "/api/v1/auth/login", body: credentials).decode(Login.self)
        return BenchClient(url: url, client: client, token: login.token)
    }

    func upload(_ zip: String, name: String) async throws -> HTTPResponse {
        try await client.execute(HTTPRequest(
            method: "POST", url: url + "/api/v1/jobs",
            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/zip"), ("Content-Disposition", "attachment; filename=\"\(name)\"")],
            body: .file(path: zip)
        ))
    }

    /// Seconds from the start of the upload until the result has been downloaded.
    /// `poll` is how often the job's status is asked for, as a results page would.
    func runToResult(_ zip: String, name: String, poll: Duration = .milliseconds(5)) async throws -> Double {
        let start = Date()
        let response = try await upload(zip, name: name)
        guard response.status == 201 else { throw BenchError("upload answered \(response.status): \(String(decoding: response.body, as: UTF8.self))") }
        var job = try response.decode(Job.self)
        let auth = [(name: "Authorization", value: "Bearer \(token)")]
        while !["succeeded", "failed", "timed_out", "killed", "canceled", "error"].contains(job.status) {
            try await Task.sleep(for: poll)
            job = try await client.json("GET", url + "/api/v1/jobs/\(job.id)", headers: auth).decode(Job.self)
        }
        guard job.status == "succeeded" else { throw BenchError("job \(job.id) ended \(job.status): \(job.reason ?? "")") }
        let result = try await client.execute(HTTPRequest(url: url + "/api/v1/jobs/\(job.id)/result", headers: auth))
        guard result.status == 200 else { throw BenchError("result answered \(result.status)") }
        return Date().timeIntervalSince(start)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
