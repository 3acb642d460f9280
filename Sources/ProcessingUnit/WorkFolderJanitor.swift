import FerryFiles
import Foundation
import Logging
import ServiceLifecycle

/// A finished job's work folder (the extracted bundle and everything the job wrote) leaves the
/// volume once its result and manifest are written: at once by default, or after
/// `unit.keep-work-seconds` for debugging. This service removes those kept past their time, and those
/// a unit that stopped mid-way left behind, every minute and at start; a job still running has no
/// manifest yet and is never touched. Removal works for any tree a job can make (`FileTree.remove`).
struct WorkFolderJanitor: Service {
    /// Where the jobs' manifests are (the shared volume), and their work folders (the sandbox root).
    let jobs: String
    let workFolders: String
    let keep: TimeInterval
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let removed = await BlockingWork.run { [self] in sweep() }
            if removed > 0 { logger.info("removed work folders of finished jobs", metadata: ["count": "\(removed)"]) }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        }
    }

    /// One pass; returns how many work folders went.
    @discardableResult
    func sweep(now: Date = Date()) -> Int {
        var removed = 0
        for job in (try? FileManager.default.contentsOfDirectory(atPath: workFolders)) ?? [] where !job.hasPrefix(".") {
            var manifest = stat()
            guard lstat(jobs + "/" + job + "/manifest.json", &manifest) == 0 else { continue }
            guard now.timeIntervalSince1970 - Double(manifest.st_mtim.tv_sec) >= keep else { continue }
            do {
                try FileTree.remove(workFolders + "/" + job)
                removed += 1
            } catch {
                logger.warning("cannot remove a finished job's work folder", metadata: ["job.id": "\(job)", "error": "\(error)"])
            }
        }
        return removed
    }
}
