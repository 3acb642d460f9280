import FerryContracts
import FerryService
import Foundation
import Hummingbird
import Logging

/// What the people waiting are told: whether any processing unit takes jobs at all (the consumers
/// of `ferry.jobs`), and for a job that waits, why (its place in the queue, units busy or none).
struct WaitingController {
    let store: JobStore
    let control: any BrokerControl
    /// A job that waited less than this is simply queued; after it, its page says why it waits.
    let noticeAfter: TimeInterval
    /// The shared volume, and the free space below which the units start no job (`unit.min-free-mib`).
    var dataDirectory: String? = nil
    var minFreeBytes: Int64 = 1 << 30
    let logger: Logger

    static let noUnits = "No processing unit is taking jobs right now; your job waits until one does. Ferry's operators have been told on the admin page."

    struct ServiceState: Codable, ResponseEncodable, Equatable {
        /// Consumers of ferry.jobs, nil when the broker cannot be asked.
        var unitsTakingJobs: Int?
        var jobsWaiting: Int?
        var notice: String?
    }

    struct Waiting: Codable, ResponseEncodable, Equatable {
        /// Jobs of anyone queued before this one.
        var ahead: Int
        var unitsTakingJobs: Int?
        var message: String?
    }

    /// The units taking jobs now, and a notice when none does.
    func state() async -> ServiceState {
        do {
            let (messages, consumers) = try await control.jobsWaiting()
            return ServiceState(unitsTakingJobs: consumers, jobsWaiting: messages, notice: consumers == 0 ? Self.noUnits : nil)
        } catch {
            logger.warning("the broker cannot say who takes jobs", metadata: ["error": "\(error)"])
            return ServiceState(unitsTakingJobs: nil, jobsWaiting: nil, notice: "Ferry cannot reach its queue right now; uploads are kept and run once it is back.")
        }
    }

    func register(to router: some RouterMethods<BackendContext>) {
        router.get("/api/v1/service") { _, context -> ServiceState in
            _ = try context.requireUser()
            return await state()
        }
        router.get("/api/v1/jobs/{id}/waiting") { _, context -> Waiting in
            let user = try context.requireUser()
            let id = try context.parameters.require("id")
            guard let job = try await store.job(id, owner: user) else { throw APIError.jobNotFound(id) }
            guard job.status == .submitted || job.status == .queued else { return Waiting(ahead: 0, unitsTakingJobs: nil, message: nil) }
            let ahead = try await store.jobsAhead(of: id)
            let service = await state()
            let waited = Date().timeIntervalSince(job.submittedAt)
            var message: String?
            let free = dataDirectory.map { VolumeMeter.space(of: $0).free }
            if job.status == .queued, let reason = job.reason {
                // Waiting in a cluster's queue, with the cluster's reason (the Slurm executor).
                message = reason
            } else if let notice = service.notice {
                message = notice
            } else if let free, free < minFreeBytes {
                message = "Ferry's shared storage is nearly full (\(free >> 20) MiB free), so no new job starts until there is room; your job waits and is not lost. Ferry's operators see it on the admin page."
            } else if waited >= noticeAfter {
                let units = service.unitsTakingJobs.map { $0 == 1 ? "1 processing unit is" : "\($0) processing units are" } ?? "The processing units are"
                message = ahead > 0
                    ? "\(ahead) \(ahead == 1 ? "job is" : "jobs are") ahead of yours in the queue; \(units) busy with others. It starts when a slot is free."
                    : "Your job is next in the queue; it starts as soon as a processing unit has a free slot (\(units.lowercased()) busy)."
            }
            return Waiting(ahead: ahead, unitsTakingJobs: service.unitsTakingJobs, message: message)
        }
    }
}

extension JobStore {
    /// Jobs of anyone still waiting (submitted or queued) that came before `jobID`.
    func jobsAhead(of jobID: String) async throws -> Int {
        try await connection.query(
            "SELECT COUNT(*) AS n FROM jobs WHERE status IN ('submitted', 'queued') AND seq < (SELECT seq FROM jobs WHERE id = ?)", [.text(jobID)]
        ).first?.column("n")?.integer ?? 0
    }
}
