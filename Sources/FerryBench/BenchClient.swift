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
        while !Self.finalStatuses.contains(job.status) {
            try await Task.sleep(for: poll)
            job = try await client.json("GET", url + "/api/v1/jobs/\(job.id)", headers: auth).decode(Job.self)
        }
        guard job.status == "succeeded" else { throw BenchError("job \(job.id) ended \(job.status): \(job.reason ?? "")") }
        let result = try await client.execute(HTTPRequest(url: url + "/api/v1/jobs/\(job.id)/result", headers: auth))
        guard result.status == 200 else { throw BenchError("result answered \(result.status)") }
        return Date().timeIntervalSince(start)
    }
}

extension BenchClient {
    /// Uploads `count` copies of `zip` (8 at a time), watches the job list every 100 ms until all have
    /// ended, then downloads every result (8 at a time). Throws if any job did not succeed.
    func runMany(_ zip: String, count: Int) async throws {
        let auth = [(name: "Authorization", value: "Bearer \(token)")]
        let ids = try await forEach(Array(0..<count), concurrently: 8) { index -> String in
            let response = try await upload(zip, name: "burst-\(index).zip")
            guard response.status == 201 else { throw BenchError("upload answered \(response.status): \(String(decoding: response.body, as: UTF8.self))") }
            return try response.decode(Job.self).id
        }
        struct Page: Decodable { var jobs: [Job]; var next: String? }
        let wanted = Set(ids)
        while true {
            var ended: [String: Job] = [:]
            var cursor: String?
            repeat {
                let page = try await client.json("GET", url + "/api/v1/jobs?limit=200" + (cursor.map { "&cursor=\($0)" } ?? ""), headers: auth).decode(Page.self)
                for job in page.jobs where wanted.contains(job.id) && Self.finalStatuses.contains(job.status) { ended[job.id] = job }
                cursor = page.next
            } while cursor != nil
            if ended.count == wanted.count {
                if let failed = ended.values.first(where: { $0.status != "succeeded" }) {
                    throw BenchError("job \(failed.id) ended \(failed.status): \(failed.reason ?? "")")
                }
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        _ = try await forEach(ids, concurrently: 8) { id in
            let result = try await client.execute(HTTPRequest(url: url + "/api/v1/jobs/\(id)/result", headers: auth))
            guard result.status == 200 else { throw BenchError("result of \(id) answered \(result.status)") }
        }
    }

    static let finalStatuses: Set<String> = ["succeeded", "failed", "timed_out", "killed", "canceled", "error"]

    /// Runs `body` for every item with at most `width` at once; results in the items' order.
    private func forEach<T: Sendable, R: Sendable>(_ items: [T], concurrently width: Int, _ body: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            for (index, item) in items.enumerated() {
                if index >= width, let (done, value) = try await group.next() { results[done] = value }
                group.addTask { (index, try await body(item)) }
            }
            for try await (done, value) in group { results[done] = value }
            return results.map { $0! }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
