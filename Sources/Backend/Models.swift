import FerryContracts
import Foundation
import Hummingbird

/// A researcher's account.
struct User: Sendable, Equatable {
    var id: String
    var username: String
    /// The first account, or one named in `auth.admins`: sees the admin page and everyone's jobs there.
    var isAdmin = false
    var isDisabled = false
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
    /// Set for a run of a sweep: the sweep, the run's place in it and what it was given.
    var sweep: JobSweep? = nil
}

/// A job's place in its sweep.
struct JobSweep: Codable, Sendable, Equatable {
    var id: String
    var index: Int
    var parameters: [SweepParameter]
}

/// One page of the caller's jobs, newest first; `next` fetches the following page.
struct JobPage: Codable, Sendable, ResponseEncodable {
    var jobs: [Job]
    var next: String?
}

/// One status a job reached (the job page's history).
struct JobHistoryEntry: Codable, Sendable, Equatable {
    var status: JobStatus
    var at: Date
    var reason: String?
}

/// An account as administrators see it.
struct UserSummary: Codable, Sendable, Equatable {
    var id: String
    var username: String
    var isAdmin: Bool
    var disabled: Bool
    var createdAt: Date
    var jobs: Int
}

/// A processing unit as the Backend knows it from the events it reported.
struct UnitSummary: Codable, Sendable, Equatable {
    var name: String
    var lastSeen: Date
    var jobs: [Job]
    /// Whether the unit answered its health check just now (nil: it has no address to ask).
    var answering: Bool?
    /// What is wrong when it did not.
    var problem: String?
}

struct JobHistory: Codable, Sendable, ResponseEncodable {
    var history: [JobHistoryEntry]
}

struct ProjectList: Codable, Sendable, ResponseEncodable {
    var projects: [String]
}

/// `GET /api/v1/limits`: sizes in bytes, times in seconds, memory in MiB.
struct ServerLimits: Codable, Sendable, ResponseEncodable {
    var maxUploadBytes: Int
    var defaultTimeLimit: Int
    var maxTimeLimit: Int
    var defaultMemoryLimit: Int
    var maxMemoryLimit: Int
    /// Days a finished job's files are kept (nil: until deleted).
    var retentionDays: Int?
    /// The retention in words, for the pages.
    var retention: String?
}
