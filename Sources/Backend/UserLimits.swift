import Configuration
import FerryService
import Foundation
import HTTPTypes
import FerryContracts

/// What one researcher may hold at once, set by the operator (`limits.user-*`; 0 turns one off): jobs
/// waiting or running, jobs submitted per minute, and bytes of bundles and results stored. Over a
/// limit, an upload or re-run is refused with 429 (or 413 for storage) naming the limit and how to
/// free room; nothing of it is kept.
struct UserLimits: Sendable, Equatable {
    var activeJobs = 200
    var submissionsPerMinute = 120
    var storageBytes: Int64 = 100 << 30

    init(activeJobs: Int = 200, submissionsPerMinute: Int = 120, storageBytes: Int64 = 100 << 30) {
        self.activeJobs = activeJobs
        self.submissionsPerMinute = submissionsPerMinute
        self.storageBytes = storageBytes
    }

    init(reader: ConfigReader) throws {
        self.init()
        activeJobs = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsUserActiveJobs), default: activeJobs)
        submissionsPerMinute = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsUserUploadsPerMinute), default: submissionsPerMinute)
        let storageMiB = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsUserStorageMiB), default: Int(storageBytes >> 20))
        for (key, value) in [("limits.user-active-jobs", activeJobs), ("limits.user-uploads-per-minute", submissionsPerMinute), ("limits.user-storage-mib", storageMiB)] where value < 0 {
            throw ConfigurationError(key: key, message: "\(value); use 0 (no limit) or more")
        }
        storageBytes = Int64(storageMiB) << 20
    }

    /// Throws the refusal when `holdings`, with `jobs` more jobs (a sweep's runs) of `bytes`, would go past a limit.
    func check(_ holdings: JobStore.Holdings, adding bytes: Int64, jobs: Int = 1) throws {
        if activeJobs > 0, jobs > 1, holdings.activeJobs + jobs > activeJobs {
            throw APIError(
                .tooManyRequests, code: "limits.active_jobs",
                message: "This sweep has \(jobs) runs; with the \(holdings.activeJobs) jobs you have waiting or running, that is more than the \(activeJobs) this Ferry allows at once. Make the sweep smaller, or wait for jobs to finish.",
                details: ["limit": "\(activeJobs)"]
            )
        }
        if activeJobs > 0, holdings.activeJobs >= activeJobs {
            throw APIError(
                .tooManyRequests, code: "limits.active_jobs",
                message: "You have \(holdings.activeJobs) jobs waiting or running, the most this Ferry allows at once. Wait for some to finish, or cancel some, then submit again.",
                details: ["limit": "\(activeJobs)"]
            )
        }
        if submissionsPerMinute > 0, holdings.recentSubmissions >= submissionsPerMinute {
            throw APIError(
                .tooManyRequests, code: "limits.upload_rate",
                message: "You submitted \(holdings.recentSubmissions) jobs in the last minute, the most this Ferry allows. Wait a minute, then submit again.",
                details: ["limit": "\(submissionsPerMinute)", "retryAfter": "60"]
            )
        }
        if storageBytes > 0, holdings.storedBytes + bytes > storageBytes {
            throw APIError(
                .contentTooLarge, code: "limits.storage",
                message: "Your bundles and results take \(Self.mebibytes(holdings.storedBytes)) MiB; with this job they would pass the \(Self.mebibytes(storageBytes)) MiB this Ferry keeps for you. Delete jobs you no longer need (their bundles and results go with them), then submit again.",
                details: ["limitBytes": "\(storageBytes)", "storedBytes": "\(holdings.storedBytes)"]
            )
        }
    }

    private static func mebibytes(_ bytes: Int64) -> Int64 { (bytes + (1 << 20) - 1) >> 20 }
}
