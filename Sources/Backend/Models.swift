import FerryContracts
import Foundation
import Hummingbird

/// A researcher's account.
struct User: Sendable, Equatable {
    var id: String
    var username: String
}

/// A job as the public API shows it (DESIGN.md, "Public HTTP API").
struct Job: Codable, Sendable, Equatable, ResponseEncodable {
    var id: String
    var project: String
    var owner: String
    var status: JobStatus
    var exitCode: Int32?
    var reason: String?
    var submittedAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    var resultBytes: Int64?
    var timeLimit: Int
    var memoryLimit: Int
}

/// One page of the caller's jobs, newest first; `next` fetches the following page.
struct JobPage: Codable, Sendable, ResponseEncodable {
    var jobs: [Job]
    var next: String?
}
