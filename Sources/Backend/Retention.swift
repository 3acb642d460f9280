import Configuration
import FerryContracts
import FerryFiles
import FerryService
import Foundation
import Logging
import ServiceLifecycle
import SQLiteNIO

/// How long the shared volume keeps finished jobs' files (`retention.days`), and how much it keeps
/// at most (`retention.max-gib`): beyond either, the oldest finished jobs lose their bundle, logs
/// and result (their row and history stay, and the pages say the files are gone). 0 keeps forever.
struct RetentionSettings: Sendable, Equatable {
    var days = 0
    var maxBytes: Int64 = 0

    init(days: Int = 0, maxBytes: Int64 = 0) {
        self.days = days
        self.maxBytes = maxBytes
    }

    init(reader: ConfigReader) throws {
        days = reader.int(forKey: ConfigKey(ConfigurationKeys.retentionDays), default: 0)
        let gib = reader.int(forKey: ConfigKey(ConfigurationKeys.retentionMaxGiB), default: 0)
        guard days >= 0 else { throw ConfigurationError(key: ConfigurationKeys.retentionDays, message: "\(days); use 0 (keep) or more days") }
        guard gib >= 0 else { throw ConfigurationError(key: ConfigurationKeys.retentionMaxGiB, message: "\(gib); use 0 (no limit) or more GiB") }
        maxBytes = Int64(gib) << 30
    }

    /// What the pages tell researchers.
    var summary: String? {
        switch (days, maxBytes) {
        case (0, 0): nil
        case (let days, 0): "Results are kept for \(days) days after a job ends."
        case (0, _): "The oldest results are removed when Ferry's storage is full."
        case (let days, _): "Results are kept for \(days) days after a job ends, less when Ferry's storage is full."
        }
    }
}

/// The shared volume's use by kind, measured by the retention sweeper, for the admin page.
struct VolumeUsage: Codable, Sendable, Equatable {
    var bundlesBytes: Int64 = 0
    var resultsBytes: Int64 = 0
    var jobFoldersBytes: Int64 = 0
    var environmentsBytes: Int64 = 0
    var totalBytes: Int64 = 0
    var freeBytes: Int64 = 0
    var measuredAt: Date?
}

/// The last measurement, shared by the sweeper and the admin routes.
actor VolumeMeter {
    private(set) var usage = VolumeUsage()

    func record(_ usage: VolumeUsage) { self.usage = usage }

    /// Bytes on disk below `path` (links not followed).
    static func bytes(below path: String) -> Int64 {
        var total: Int64 = 0
        _ = try? FileTree.walk(path) { entry in
            total += Int64(entry.info.st_blocks) * 512
            return .next
        }
        return total
    }

    /// Size and free space of the file system that holds `path`.
    static func space(of path: String) -> (total: Int64, free: Int64) {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return (0, 0) }
        return (Int64(info.f_blocks) * Int64(info.f_frsize), Int64(info.f_bavail) * Int64(info.f_frsize))
    }
}

/// Every `interval` (five minutes), and at start: removes the files of finished jobs past the retention,
/// oldest first, and measures the volume for the admin page.
struct RetentionSweeper: Service {
    let store: JobStore
    let dataDirectory: String
    let settings: RetentionSettings
    let meter: VolumeMeter
    var interval: Duration = .seconds(300)
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await sweep()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One pass; returns the jobs whose files went.
    @discardableResult
    func sweep(now: Date = Date()) async -> [String] {
        var removed: [String] = []
        do {
            if settings.days > 0 {
                removed += try await expire(try await store.finishedJobs(before: now.addingTimeInterval(-Double(settings.days) * 86_400), limit: 10_000))
            }
            if settings.maxBytes > 0 {
                // Oldest first, one job at a time, until the total is within the limit.
                var stored = try await store.storedBytes()
                while stored > settings.maxBytes {
                    let oldest = try await store.finishedJobs(before: now, limit: 100)
                    if oldest.isEmpty { break }
                    for id in oldest where stored > settings.maxBytes {
                        removed += try await expire([id])
                        stored = try await store.storedBytes()
                    }
                }
            }
        } catch {
            logger.error("retention could not run; it tries again", metadata: ["error": "\(error)"])
        }
        if !removed.isEmpty { logger.notice("removed the files of finished jobs past the retention", metadata: ["jobs": "\(removed.count)"]) }
        let data = dataDirectory
        let usage = await BlockingUsage.measure(data)
        await meter.record(usage)
        return removed
    }

    private func expire(_ jobs: [String]) async throws -> [String] {
        let data = dataDirectory
        var expired: [String] = []
        for id in jobs {
            let failures: [String] = await BlockingUsage.run {
                ["\(data)/bundles/\(id).zip", "\(data)/results/\(id).zip", "\(data)/jobs/\(id)"].compactMap { path in
                    do { try FileTree.remove(path); return nil } catch { return "\(error)" }
                }
            }
            // A job whose files stay is not marked: the next sweep tries again, and the operator is told.
            if let failed = failures.first {
                logger.error("retention could not remove a job's files; check the shared volume's permissions", metadata: [LogKeys.jobID: "\(id)", "error": "\(failed)"])
                continue
            }
            try await store.markFilesRemoved(id)
            expired.append(id)
        }
        return expired
    }
}

/// Blocking file work of the Backend's sweeper, on a thread of its own.
enum BlockingUsage {
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: work()) }
        }
    }

    static func measure(_ data: String) async -> VolumeUsage {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let space = VolumeMeter.space(of: data)
                continuation.resume(returning: VolumeUsage(
                    bundlesBytes: VolumeMeter.bytes(below: data + "/bundles"), resultsBytes: VolumeMeter.bytes(below: data + "/results"),
                    jobFoldersBytes: VolumeMeter.bytes(below: data + "/jobs"), environmentsBytes: VolumeMeter.bytes(below: data + "/envs"),
                    totalBytes: space.total, freeBytes: space.free, measuredAt: Date()
                ))
            }
        }
    }
}

extension JobStore {
    /// Finished jobs, oldest first, that ended before `date` and still have their files.
    func finishedJobs(before date: Date, limit: Int) async throws -> [String] {
        let finals = JobStatus.allCases.filter(\.isFinal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try await connection.query(
            "SELECT id FROM jobs WHERE status IN (\(finals)) AND files_removed_at IS NULL AND COALESCE(finished_at, status_at) < ? ORDER BY COALESCE(finished_at, status_at) LIMIT ?",
            [.float(date.timeIntervalSince1970), .integer(limit)]
        ).compactMap { $0.column("id")?.string }
    }

    /// Bytes of bundles and results of the jobs that still have their files.
    func storedBytes() async throws -> Int64 {
        Int64(try await connection.query("SELECT COALESCE(SUM(bundle_bytes + COALESCE(result_bytes, 0)), 0) AS n FROM jobs WHERE files_removed_at IS NULL").first?.column("n")?.integer ?? 0)
    }

    func markFilesRemoved(_ id: String) async throws {
        _ = try await connection.query("UPDATE jobs SET files_removed_at = ? WHERE id = ?", [.float(Date().timeIntervalSince1970), .text(id)])
    }

    /// Whether a job's files were removed by the retention, for the download routes.
    func filesRemoved(_ id: String) async throws -> Bool {
        try await connection.query("SELECT files_removed_at FROM jobs WHERE id = ?", [.text(id)]).first?.column("files_removed_at")?.double != nil
    }

    /// Bytes each account keeps (bundles and results), for the admin page.
    func storedBytesByUser() async throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        for row in try await connection.query(
            "SELECT users.username, COALESCE(SUM(jobs.bundle_bytes + COALESCE(jobs.result_bytes, 0)), 0) AS n FROM jobs JOIN users ON users.id = jobs.owner_id WHERE jobs.files_removed_at IS NULL GROUP BY users.username"
        ) {
            if let name = row.column("username")?.string { result[name] = Int64(row.column("n")?.integer ?? 0) }
        }
        return result
    }
}

