import FerryBundle
import FerryContracts
import FerryFiles
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOPosix

/// Hands a job to the Producer; answers only once the broker confirmed it.
protocol JobQueue: Sendable {
    func enqueue(_ message: JobMessage) async throws
}

/// What the Backend asks of the broker directly: cancel requests on `ferry.control`, and how many
/// jobs wait in `ferry.jobs` (the admin page).
protocol BrokerControl: Sendable {
    func cancel(_ request: CancelRequest) async throws
    func jobsWaiting() async throws -> (messages: Int, consumers: Int)
}

/// Limits and places the jobs routes use, read once from configuration.
struct JobSettings: Sendable {
    var dataDirectory: String
    var maxUploadBytes: Int = 1 << 30
    var defaultTimeLimit = 3600, maxTimeLimit = 86_400
    var defaultMemoryLimit = 2048, maxMemoryLimit = 16_384
    var bundleLimits = BundleLimits()
    var userLimits = UserLimits()
    /// After how long a waiting job's page says why it waits.
    var waitNoticeSeconds: TimeInterval = 10
    var retention = RetentionSettings()
    /// Free space below which units start no job (`unit.min-free-mib`, read alike by the units).
    var minFreeBytes: Int64 = 1 << 30
    /// Runs one sweep may have, and runs of a sweep at once unless its owner says otherwise.
    var maxSweepRuns = 500, defaultSweepThrottle = 4
    /// The volume's use as the retention sweeper last measured it.
    var volume = VolumeMeter()
    /// Threads for blocking file work (upload writes, bundle checks, log reads), apart from NIO's
    /// shared pool so that many uploads at once do not queue behind each other two at a time.
    var fileThreads: NIOThreadPool = .singleton

    var bundles: String { dataDirectory + "/bundles" }
}

/// `/api/v1/jobs`: upload, list, details, logs and results, always scoped to the caller.
struct JobsController {
    let store: JobStore
    let queue: any JobQueue
    let control: any BrokerControl
    let settings: JobSettings
    let logger: Logger
    var turns: SweepTurns { SweepTurns(store: store, queue: queue, logger: logger) }

    func register(to router: some RouterMethods<BackendContext>) {
        router.post("/api/v1/jobs", use: upload)
        router.get("/api/v1/jobs", use: list)
        router.get("/api/v1/jobs/{id}", use: details)
        router.get("/api/v1/jobs/{id}/log", use: log)
        router.get("/api/v1/jobs/{id}/result", use: result)
        router.get("/api/v1/jobs/{id}/files", use: resultFiles)
        router.get("/api/v1/jobs/{id}/file", use: resultFile)
        router.get("/api/v1/jobs/{id}/history", use: history)
        router.get("/api/v1/jobs/{id}/manifest", use: manifest)
        router.post("/api/v1/jobs/{id}/cancel", use: cancel)
        router.post("/api/v1/jobs/{id}/rerun", use: rerun)
        router.delete("/api/v1/jobs/{id}", use: delete)
        router.get("/api/v1/projects", use: projects)
        router.get("/api/v1/limits", use: limits)
    }

    /// This server's upload size limit and job limits, for the upload page's checks and hints.
    @Sendable func limits(_ request: Request, context: BackendContext) async throws -> ServerLimits {
        _ = try context.requireUser()
        return ServerLimits(
            maxUploadBytes: settings.maxUploadBytes, defaultTimeLimit: settings.defaultTimeLimit, maxTimeLimit: settings.maxTimeLimit,
            defaultMemoryLimit: settings.defaultMemoryLimit, maxMemoryLimit: settings.maxMemoryLimit,
            retentionDays: settings.retention.days > 0 ? settings.retention.days : nil, retention: settings.retention.summary
        )
    }

    @Sendable func upload(_ request: Request, context: BackendContext) async throws -> EditedResponse<Job> {
        let user = try context.requireUser()
        let bundle = try await acceptBundle(request, user: user)
        if let declarations = bundle.report.parameterDeclarations {
            // A project that declares its parameters runs with their defaults, as a sweep of one run
            // (so it gets params.json like any run); other values go through /api/v1/sweeps.
            return try await runWithDefaults(bundle, declarations: declarations, user: user)
        }
        let job = Job(
            id: UUID().uuidString.lowercased(), project: bundle.report.project, owner: user.username, status: .submitted,
            submittedAt: Date(), timeLimit: bundle.limits?.timeLimitSeconds ?? settings.defaultTimeLimit,
            memoryLimit: bundle.limits?.memoryLimitMiB ?? settings.defaultMemoryLimit
        )
        guard rename(bundle.path, settings.bundles + "/\(job.id).zip") == 0 else {
            unlink(bundle.path)
            throw APIError(.internalServerError, code: "upload.storage", message: "The upload cannot be stored right now; try again later.")
        }
        return try await submit(job, user: user, bundleBytes: bundle.bytes)
    }

    private func runWithDefaults(_ bundle: AcceptedBundle, declarations: String, user: User) async throws -> EditedResponse<Job> {
        let record: JobStore.SweepRecord
        do {
            let plan = try ParameterDeclarations.parse(declarations).apply(to: SweepPlan(names: [], runs: [[]]))
            record = try await self.record(sweep: plan, source: "", throttle: 1, bundle: bundle, user: user)
        } catch {
            unlink(bundle.path)
            throw error
        }
        guard let job = try await store.runs(ofSweep: record.id).first else {
            throw APIError(.internalServerError, code: "upload.storage", message: "The upload cannot be stored right now; try again later.")
        }
        return EditedResponse(status: .created, headers: [.location: "/api/v1/jobs/\(job.id)"], response: job)
    }

    /// Gives each `to` job the bundle of its `from` job (a job id, or a temporary upload's path).
    /// Bundles are never written after upload, so jobs share the file: a hard link, or a copy where
    /// the volume has none (a copy may be a GiB: on a file thread, never the pool). All or none:
    /// false, with nothing left behind, when one cannot be shared (its bundle is gone).
    func shareBundles(_ pairs: [(from: String, to: String)]) async throws -> Bool {
        let directory = settings.bundles
        return try await settings.fileThreads.runIfActive {
            var made: [String] = []
            for (from, to) in pairs {
                let source = from.hasPrefix("/") ? from : directory + "/\(from).zip", target = directory + "/\(to).zip"
                guard link(source, target) == 0 || (try? FileManager.default.copyItem(atPath: source, toPath: target)) != nil else {
                    for file in made { unlink(file) }
                    return false
                }
                made.append(target)
            }
            return true
        }
    }

    /// An upload that passed the bundle rules and the caller's limits, under a temporary name the
    /// caller renames (or removes), with the form's fields and the job limits they ask for.
    struct AcceptedBundle: Sendable {
        var path: String
        var bytes: Int
        var report: BundleReport
        var limits: JobLimits?
        var fields: [String: String]
    }

    /// Receives and checks an upload. Limits in the query and the user's own limits are checked
    /// before the upload streams in, so a refusal costs nothing; nothing of a refused upload is kept.
    func acceptBundle(_ request: Request, user: User) async throws -> AcceptedBundle {
        _ = try jobLimits(request.uri.queryParameters, fields: [:])
        try settings.userLimits.check(try await store.holdings(ownerID: user.id), adding: 0)
        let receiver = UploadReceiver(directory: settings.bundles, maxBytes: settings.maxUploadBytes, threads: settings.fileThreads)
        let upload = try await receiver.receive(request)
        do {
            try settings.userLimits.check(try await store.holdings(ownerID: user.id), adding: Int64(upload.bytes))
            let limits = try jobLimits(request.uri.queryParameters, fields: upload.fields)
            let bundleLimits = settings.bundleLimits
            let report = try await settings.fileThreads.runIfActive {
                try BundleInspector.inspect(archive: upload.path, uploadName: upload.fileName, limits: bundleLimits)
            }
            BackendMetrics.uploaded(bytes: upload.bytes, accepted: true)
            return AcceptedBundle(path: upload.path, bytes: upload.bytes, report: report, limits: limits, fields: upload.fields)
        } catch let error as BundleError {
            unlink(upload.path)
            BackendMetrics.uploaded(bytes: upload.bytes, accepted: false)
            throw APIError(.unprocessableContent, code: error.code, message: error.message)
        } catch {
            unlink(upload.path)
            throw error
        }
    }

    /// Records the job (outbox: it is on disk as `submitted` before anything else happens), hands it
    /// to the Producer and answers 201 with the job as it is now.
    private func submit(_ job: Job, user: User, bundleBytes: Int) async throws -> EditedResponse<Job> {
        try await store.insert(job, ownerID: user.id, bundleBytes: bundleBytes)
        var answered = job
        let message = JobMessage(
            jobID: job.id, owner: user.id, project: job.project, bundlePath: "bundles/\(job.id).zip",
            limits: JobLimits(timeLimitSeconds: job.timeLimit, memoryLimitMiB: job.memoryLimit), submittedAt: job.submittedAt
        )
        do {
            try await queue.enqueue(message)
            if try await store.advance(job.id, to: .queued, at: Date(), from: [.submitted]) { answered.status = .queued }
        } catch {
            logger.warning("job stays submitted until the Producer takes it", metadata: [LogKeys.jobID: "\(job.id)", "error": "\(error)"])
        }
        let current = try await store.job(job.id, owner: user) ?? answered
        return EditedResponse(status: .created, headers: [.location: "/api/v1/jobs/\(job.id)"], response: current)
    }

    /// Cancels a job that has not ended: a waiting job is `canceled` at once and never runs; a
    /// preparing or running one is killed by its unit, which then reports `canceled`.
    @Sendable func cancel(_ request: Request, context: BackendContext) async throws -> EditedResponse<Job> {
        let user = try context.requireUser()
        let job = try await ownedJob(context)
        guard !job.status.isFinal else {
            throw APIError(.conflict, code: "job.finished", message: "Job \(job.id) already ended (\(job.status.rawValue)); there is nothing to cancel.")
        }
        try await cancel(job, reason: Self.canceledBeforeRunning)
        if let sweep = job.sweep { await turns.release(sweep: sweep.id) }
        return EditedResponse(status: .accepted, response: try await store.job(job.id, owner: user) ?? job)
    }

    /// Cancels a job that has not ended: `reason` is what a waiting one ends with.
    func cancel(_ job: Job, reason: String) async throws {
        // The marker first: it is what a unit checks before starting the job and while running it.
        let data = settings.dataDirectory
        try await settings.fileThreads.runIfActive {
            try CancelMarker.write(jobID: job.id, dataDirectory: data)
            // A sweep's place too: a unit that made the sweep a Slurm job array cancels its task.
            if let sweep = job.sweep { try CancelMarker.write(sweepID: sweep.id, index: sweep.index, dataDirectory: data) }
        }
        try await store.advance(job.id, to: .canceled, at: Date(), reason: reason, from: [.submitted, .queued])
        guard job.status != .submitted else { return }  // never handed to a unit (a sweep's held run)
        do {
            try await control.cancel(CancelRequest(jobID: job.id, at: Date()))
        } catch {
            logger.warning("cancel request not published; the unit will find the job's cancel marker", metadata: [LogKeys.jobID: "\(job.id)", "error": "\(error)"])
        }
    }

    static let canceledBeforeRunning = "Canceled by its owner before it ran."

    /// Runs the same bundle again with the same limits, as a new job (a sweep's run: in its place).
    @Sendable func rerun(_ request: Request, context: BackendContext) async throws -> EditedResponse<Job> {
        let user = try context.requireUser()
        let original = try await ownedJob(context)
        let bundleBytes = try await store.bundleBytes(of: original.id)
        try settings.userLimits.check(try await store.holdings(ownerID: user.id), adding: Int64(bundleBytes))
        let job = Job(
            id: UUID().uuidString.lowercased(), project: original.project, owner: user.username, status: .submitted,
            submittedAt: Date(), timeLimit: original.timeLimit, memoryLimit: original.memoryLimit
        )
        guard try await shareBundles([(from: original.id, to: job.id)]) else {
            throw APIError(.conflict, code: "job.no_bundle", message: "The bundle of job \(original.id) is gone; upload it again.")
        }
        if let sweep = original.sweep, let record = try await store.sweep(sweep.id, ownerID: user.id) {
            // A run of a sweep runs again in its place, with its parameters, within the sweep's throttle.
            var run = job
            run.sweep = sweep
            run.reason = SweepTurns.waitingReason(throttle: record.throttle)
            try await store.insertRuns([(job: run, parameters: sweep.parameters)], sweepID: sweep.id, ownerID: user.id, bundleBytes: 0)
            await turns.release(sweep: sweep.id)
            let current = try await store.job(job.id, owner: user) ?? run
            return EditedResponse(status: .created, headers: [.location: "/api/v1/jobs/\(job.id)"], response: current)
        }
        return try await submit(job, user: user, bundleBytes: bundleBytes)
    }

    /// Deletes a finished job: its bundle, logs and result first, then its row. A file that cannot be
    /// removed (the shared volume's permissions) keeps the job, and the answer says so: a 204 always
    /// means the files are gone.
    @Sendable func delete(_ request: Request, context: BackendContext) async throws -> HTTPResponse.Status {
        let user = try context.requireUser()
        let job = try await ownedJob(context)
        guard job.status.isFinal else {
            throw APIError(.conflict, code: "job.not_finished", message: "Job \(job.id) is still \(job.status.rawValue); cancel it first, then delete it.")
        }
        let data = settings.dataDirectory
        let kept: [(what: String, error: String)] = try await settings.fileThreads.runIfActive {
            // The marker stays as a tombstone: a delivery of this job still in the queue never runs.
            try? CancelMarker.write(jobID: job.id, dataDirectory: data)
            var kept: [(String, String)] = []
            for (what, path) in [("bundle", "\(data)/bundles/\(job.id).zip"), ("result", "\(data)/results/\(job.id).zip"), ("logs", "\(data)/jobs/\(job.id)")] {
                do { try FileTree.remove(path) } catch { kept.append((what, "\(error)")) }
            }
            return kept
        }
        guard kept.isEmpty else {
            logger.error("the files of a job could not be removed; it is not deleted", metadata: [LogKeys.jobID: "\(job.id)", "errors": "\(kept.map(\.error))"])
            throw APIError(
                .internalServerError, code: "job.files_kept",
                message: "Ferry could not remove the \(kept.map(\.what).joined(separator: " and ")) of job \(job.id), so the job is kept. This is Ferry's fault, not yours: ask the operator to check the shared volume's permissions."
            )
        }
        guard try await store.delete(job.id, ownerID: user.id) else {
            throw APIError(.conflict, code: "job.not_finished", message: "Job \(job.id) changed while it was deleted; try again.")
        }
        return .noContent
    }

    /// The statuses the job went through, oldest first.
    @Sendable func history(_ request: Request, context: BackendContext) async throws -> JobHistory {
        let job = try await ownedJob(context)
        return JobHistory(history: try await store.history(of: job.id))
    }

    /// The unit's `manifest.json`: Python version, packages, timings, peak memory.
    @Sendable func manifest(_ request: Request, context: BackendContext) async throws -> Response {
        let job = try await ownedJob(context)
        let path = settings.dataDirectory + "/jobs/\(job.id)/manifest.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIError(.notFound, code: "job.no_manifest", message: "Job \(job.id) has no manifest yet; it is written when the job ends.")
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The caller's project names, for filtering.
    @Sendable func projects(_ request: Request, context: BackendContext) async throws -> ProjectList {
        ProjectList(projects: try await store.projects(ownerID: try context.requireUser().id))
    }

    @Sendable func list(_ request: Request, context: BackendContext) async throws -> JobPage {
        let user = try context.requireUser()
        return try await Self.page(request, store: store, ownerID: user.id)
    }

    /// A page of jobs per the query's `status`, `project`, `limit` and `cursor`.
    static func page(_ request: Request, store: JobStore, ownerID: String?) async throws -> JobPage {
        let query = request.uri.queryParameters
        var status: JobStatus?
        if let name = query.get("status"), !name.isEmpty {
            guard let parsed = JobStatus(rawValue: name) else {
                throw APIError(.badRequest, code: "query.invalid_status", message: "status must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            status = parsed
        }
        let limit = query.get("limit", as: Int.self) ?? 50
        guard (1...200).contains(limit) else {
            throw APIError(.badRequest, code: "query.invalid_limit", message: "limit must be between 1 and 200.")
        }
        let cursor = try query.get("cursor").map { value -> Int in
            guard let seq = Int(value) else { throw APIError(.badRequest, code: "query.invalid_cursor", message: "cursor must be the next value of an earlier page.") }
            return seq
        }
        let project = query.get("project").flatMap { $0.isEmpty ? nil : $0 }
        let page = try await store.jobs(ownerID: ownerID, status: status, project: project, limit: limit, before: cursor)
        return JobPage(jobs: page.jobs, next: page.next.map(String.init))
    }

    @Sendable func details(_ request: Request, context: BackendContext) async throws -> Job {
        try await ownedJob(context)
    }

    /// Log bytes from `offset`, at most 1 MiB; `X-Log-Size` tells how far the log has grown.
    @Sendable func log(_ request: Request, context: BackendContext) async throws -> Response {
        let job = try await ownedJob(context)
        try await requireFiles(of: job)
        let stream = request.uri.queryParameters.get("stream") ?? "stdout"
        guard ["stdout", "stderr", "install"].contains(stream) else {
            throw APIError(.badRequest, code: "query.invalid_stream", message: "stream must be stdout, stderr or install (the installer's log of requirements.txt).")
        }
        let offset = request.uri.queryParameters.get("offset", as: Int.self) ?? 0
        guard offset >= 0 else { throw APIError(.badRequest, code: "query.invalid_offset", message: "offset must be 0 or more.") }
        let path = settings.dataDirectory + "/jobs/\(job.id)/\(stream).log"
        if request.uri.queryParameters.get("download") != nil {
            guard FileManager.default.fileExists(atPath: path) else {
                throw APIError(.notFound, code: "job.no_log", message: "Job \(job.id) has no \(stream) log yet.")
            }
            let body = try await FileIO(threadPool: settings.fileThreads).loadFile(path: path, context: context)
            let name = Self.fileName(job.project) + "-\(stream).log"
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\""], body: body)
        }
        let (bytes, size) = try await settings.fileThreads.runIfActive { () -> ([UInt8], Int) in
            guard let handle = FileHandle(forReadingAtPath: path) else { return ([], 0) }
            defer { try? handle.close() }
            let size = Int(try handle.seekToEnd())
            guard offset < size else { return ([], size) }
            try handle.seek(toOffset: UInt64(offset))
            return ([UInt8](try handle.read(upToCount: min(1 << 20, size - offset)) ?? Data()), size)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8", HTTPField.Name("X-Log-Size")!: "\(size)", HTTPField.Name("X-Next-Offset")!: "\(offset + bytes.count)"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    /// 410 when the retention removed the job's files.
    func requireFiles(of job: Job) async throws {
        guard try await store.filesRemoved(job.id) else { return }
        throw APIError(.gone, code: "job.files_removed", message: "The files of job \(job.id) were removed by Ferry's retention. \(settings.retention.summary ?? "")")
    }

    @Sendable func result(_ request: Request, context: BackendContext) async throws -> Response {
        let job = try await ownedJob(context)
        try await requireFiles(of: job)
        let path = settings.dataDirectory + "/results/\(job.id).zip"
        guard job.status.isFinal, FileManager.default.fileExists(atPath: path) else {
            throw APIError(.conflict, code: "job.no_result", message: "Job \(job.id) has no result to download (it is \(job.status.rawValue)).")
        }
        let body = try await FileIO(threadPool: settings.fileThreads).loadFile(path: path, context: context)
        let name = Self.fileName(job.project) + "-output.zip"
        return Response(status: .ok, headers: [.contentType: "application/zip", .contentDisposition: "attachment; filename=\"\(name)\""], body: body)
    }

    /// A project name made safe for a Content-Disposition file name.
    static func fileName(_ project: String) -> String {
        String(project.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
    }

    func ownedJob(_ context: BackendContext) async throws -> Job {
        let user = try context.requireUser()
        let id = try context.parameters.require("id")
        guard let job = try await store.job(id, owner: user) else { throw APIError.jobNotFound(id) }
        return job
    }

    /// `timeLimit` (seconds) and `memoryLimit` (MiB) from form fields or the query, within the operator's maxima.
    func jobLimits(_ query: Parameters, fields: [String: String]) throws -> JobLimits? {
        func value(_ name: String) throws -> Int? {
            guard let text = fields[name] ?? query.get(name), !text.isEmpty else { return nil }
            guard let number = Int(text), number > 0 else {
                throw APIError(.unprocessableContent, code: "job.invalid_limit", message: "\(name) must be a whole number above 0.")
            }
            return number
        }
        let time = try value("timeLimit"), memory = try value("memoryLimit")
        if let time, time > settings.maxTimeLimit {
            throw APIError(.unprocessableContent, code: "job.limit_too_high", message: "timeLimit \(time) s is above this server's maximum of \(settings.maxTimeLimit) s.")
        }
        if let memory, memory > settings.maxMemoryLimit {
            throw APIError(.unprocessableContent, code: "job.limit_too_high", message: "memoryLimit \(memory) MiB is above this server's maximum of \(settings.maxMemoryLimit) MiB.")
        }
        guard time != nil || memory != nil else { return nil }
        return JobLimits(timeLimitSeconds: time ?? settings.defaultTimeLimit, memoryLimitMiB: memory ?? settings.defaultMemoryLimit)
    }
}
