import FerryBundle
import FerryContracts
import FerryService
import FerryZip
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// `/api/v1/sweeps`: one bundle run once per parameter set. Each run is an ordinary job (its own id,
/// status, logs, limits and result) that also knows its sweep and parameters; the sweep's routes
/// show, cancel, re-run and collect them, always scoped to the caller like jobs.
struct SweepsController {
    let jobs: JobsController
    var store: JobStore { jobs.store }
    var settings: JobSettings { jobs.settings }
    var turns: SweepTurns { jobs.turns }

    func register(to router: some RouterMethods<BackendContext>) {
        router.post("/api/v1/sweeps/preview", use: preview)
        router.post("/api/v1/sweeps", use: create)
        router.get("/api/v1/sweeps", use: list)
        router.get("/api/v1/sweeps/{id}", use: details)
        router.post("/api/v1/sweeps/{id}/cancel", use: cancel)
        router.post("/api/v1/sweeps/{id}/rerun-failed", use: rerunFailed)
        router.get("/api/v1/sweeps/{id}/results", use: results)
        router.get("/api/v1/sweeps/{id}/table", use: table)
    }

    // MARK: Answers

    struct Preview: Codable, Sendable, ResponseEncodable {
        var runs: Int
        var parameters: [String]
        var maxRuns: Int
        var defaultThrottle: Int
        /// The first runs' values, in the order of `parameters`.
        var first: [[String]]
    }

    struct Run: Codable, Sendable {
        var index: Int
        var parameters: [SweepParameter]
        var job: Job
        /// Seconds from start to end (or to now while it runs).
        var runSeconds: Double?
        /// The numbers of the run's `output/summary.json`, when it wrote one.
        var summary: [String: Double]?
    }

    struct Sweep: Codable, Sendable, ResponseEncodable {
        var id: String
        var project: String
        var createdAt: Date
        var throttle: Int
        var parameters: [String]
        /// `grid` or `sweep.csv`.
        var source: String
        var total: Int
        var counts: [String: Int]
        var finished: Bool
        /// The runs' summary names, as the table's extra columns (only with `runs`).
        var summaryColumns: [String]?
        var runs: [Run]?
    }

    struct SweepList: Codable, Sendable, ResponseEncodable {
        var sweeps: [Sweep]
    }

    // MARK: Routes

    /// `POST /api/v1/sweeps/preview` with `{"grid": "..."}`: how many runs that makes, before anything
    /// is uploaded, or the error the sweep would get.
    @Sendable func preview(_ request: Request, context: BackendContext) async throws -> Preview {
        _ = try context.requireUser()
        struct Body: Decodable { var grid: String }
        let body = try await request.decode(as: Body.self, context: context)
        guard body.grid.utf8.count <= 64 << 10 else { throw SweepPlan.invalid("invalid_grid", "The grid is longer than 64 KiB.") }
        let plan = try SweepPlan.grid(body.grid, maxRuns: settings.maxSweepRuns)
        return Preview(runs: plan.runs.count, parameters: plan.names, maxRuns: settings.maxSweepRuns, defaultThrottle: settings.defaultSweepThrottle, first: Array(plan.runs.prefix(5)))
    }

    /// `POST /api/v1/sweeps`: a bundle (multipart field `bundle`, or a raw zip body) with `grid`
    /// (or a `sweep.csv` in the project), `throttle`, `timeLimit` and `memoryLimit` as form fields or
    /// query parameters. Answers 201 with the sweep once every run is recorded.
    @Sendable func create(_ request: Request, context: BackendContext) async throws -> EditedResponse<Sweep> {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        // What the query asks is checked before the upload streams in.
        if let grid = query.get("grid"), !grid.isEmpty { _ = try SweepPlan.grid(grid, maxRuns: settings.maxSweepRuns) }
        _ = try throttle(query.get("throttle"), runs: settings.maxSweepRuns)
        let bundle = try await jobs.acceptBundle(request, user: user)
        do {
            let grid = (bundle.fields["grid"] ?? query.get("grid") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            var plan: SweepPlan, source: String
            switch (grid.isEmpty, bundle.report.sweepTable) {
            case (false, .some):
                throw SweepPlan.invalid("two_sources", "The project has a sweep.csv and the request gives a grid too; give one of them (leave the grid empty to use sweep.csv).")
            case (false, .none):
                plan = try SweepPlan.grid(grid, maxRuns: settings.maxSweepRuns)
                source = grid
            case (true, .some(let table)):
                plan = try SweepPlan.csv(table, maxRuns: settings.maxSweepRuns)
                source = "sweep.csv"
            case (true, .none) where bundle.report.parameterDeclarations != nil:
                // One run with the declared defaults (checked below: each must have one).
                plan = SweepPlan(names: [], runs: [[]])
                source = ""
            case (true, .none):
                throw SweepPlan.invalid("no_parameters", "A sweep needs its parameter sets: give a grid (like cutoff=8,10,12 and seed=1..5, one per line) or put a sweep.csv beside code.py.")
            }
            // A project that declares its parameters gets every run checked against them, defaults filled in.
            if let declarations = try bundle.report.parameterDeclarations.map(ParameterDeclarations.parse) {
                plan = try declarations.apply(to: plan)
            }
            let throttle = try throttle(bundle.fields["throttle"] ?? query.get("throttle"), runs: plan.runs.count)
            try settings.userLimits.check(try await store.holdings(ownerID: user.id), adding: Int64(bundle.bytes), jobs: plan.runs.count)

            let record = try await jobs.record(sweep: plan, source: source, throttle: throttle, bundle: bundle, user: user)
            return EditedResponse(status: .created, headers: [.location: "/api/v1/sweeps/\(record.id)"], response: try await sweep(record, withRuns: true))
        } catch {
            unlink(bundle.path)
            throw error
        }
    }

    /// The caller's sweeps, newest first, with their runs' statuses counted.
    @Sendable func list(_ request: Request, context: BackendContext) async throws -> SweepList {
        let user = try context.requireUser()
        let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 50
        guard (1...200).contains(limit) else { throw APIError(.badRequest, code: "query.invalid_limit", message: "limit must be between 1 and 200.") }
        return SweepList(sweeps: try await store.sweeps(ownerID: user.id, limit: limit).map { Self.overview($0.sweep, counts: $0.counts) })
    }

    /// The sweep with every run: its parameters, job and summary numbers.
    @Sendable func details(_ request: Request, context: BackendContext) async throws -> Sweep {
        try await sweep(try await ownedSweep(context), withRuns: true)
    }

    /// Cancels every run that has not ended: waiting ones never run, running ones are killed.
    @Sendable func cancel(_ request: Request, context: BackendContext) async throws -> EditedResponse<Sweep> {
        let record = try await ownedSweep(context)
        let open = try await store.runs(ofSweep: record.id).filter { !$0.status.isFinal }
        guard !open.isEmpty else {
            throw APIError(.conflict, code: "sweep.finished", message: "Every run of this sweep already ended; there is nothing to cancel.")
        }
        // Waiting runs first: a running one that ends meanwhile then has no held run left to let go.
        for job in open.filter({ $0.status == .submitted }) + open.filter({ $0.status != .submitted }) {
            try await jobs.cancel(job, reason: "Canceled with its sweep before it ran.")
        }
        return EditedResponse(status: .accepted, response: try await sweep(record, withRuns: true))
    }

    static let failedStatuses: Set<JobStatus> = [.failed, .timedOut, .killed, .error]

    /// Files in one combined results zip at most (its directory, about 100 bytes each, is held until the end).
    static let maxCombinedEntries: UInt64 = 300_000

    /// Runs again, as new jobs in the same places, every run that failed, timed out, was killed or
    /// ended in error; the sweep's throttle holds for them too.
    @Sendable func rerunFailed(_ request: Request, context: BackendContext) async throws -> EditedResponse<Sweep> {
        let user = try context.requireUser()
        let record = try await ownedSweep(context)
        let failed = try await store.runs(ofSweep: record.id).filter { Self.failedStatuses.contains($0.status) }
        guard !failed.isEmpty else {
            throw APIError(.conflict, code: "sweep.nothing_to_rerun", message: "No run of this sweep failed, timed out, was killed or ended in error.")
        }
        try settings.userLimits.check(try await store.holdings(ownerID: user.id), adding: 0, jobs: failed.count)
        let now = Date(), reason = SweepTurns.waitingReason(throttle: record.throttle)
        let runs = failed.map { old in
            var job = old
            job.id = UUID().uuidString.lowercased()
            (job.status, job.reason, job.submittedAt, job.exitCode, job.startedAt, job.finishedAt, job.resultBytes) = (.submitted, reason, now, nil, nil, nil, nil)
            return (job: job, parameters: old.sweep?.parameters ?? [])
        }
        guard try await jobs.shareBundles(zip(failed, runs).map { (from: $0.id, to: $1.job.id) }) else {
            throw APIError(.conflict, code: "job.no_bundle", message: "The bundle of this sweep's failed runs is gone (Ferry's retention removed it); upload the project again as a new sweep.")
        }
        try await store.insertRuns(runs, sweepID: record.id, ownerID: user.id, bundleBytes: 0)
        await turns.release(sweep: record.id)
        return EditedResponse(status: .created, response: try await sweep(record, withRuns: true))
    }

    /// `GET /api/v1/sweeps/{id}/results`: every run's result in one zip, a folder per run named by
    /// its place and parameters, streamed as it is made (the entries are copied as stored, never
    /// unpacked); a run without a result has an empty folder.
    @Sendable func results(_ request: Request, context: BackendContext) async throws -> Response {
        let record = try await ownedSweep(context)
        let runs = try await store.runs(ofSweep: record.id)
        let data = settings.dataDirectory, threads = settings.fileThreads
        let logger = jobs.logger
        let folders = runs.map { Self.folderName($0, of: runs.count) }
        // The zip's directory is kept until its end: its size is bounded up front, from each result's
        // own end record (a few bytes read per run), so a sweep of huge results cannot exhaust memory.
        let entries = try await threads.runIfActive {
            try runs.reduce(UInt64(0)) { total, job in
                total + ((try? ZipDirectoryRecord.read(path: data + "/results/\(job.id).zip"))??.entries ?? 0)
            }
        }
        guard entries <= Self.maxCombinedEntries else {
            throw APIError(
                .contentTooLarge, code: "sweep.results_too_large",
                message: "The runs of this sweep wrote \(entries) files, more than \(Self.maxCombinedEntries) in one zip; download each run's result from its page instead."
            )
        }
        let body = ResponseBody { writer in
            var archive = ZipStreamWriter()
            for (job, folder) in zip(runs, folders) {
                try await writer.write(ByteBuffer(bytes: archive.folder(folder)))
                let path = data + "/results/\(job.id).zip"
                guard job.status.isFinal, FileManager.default.fileExists(atPath: path) else { continue }
                let reader: ZipReader
                do {
                    reader = try await threads.runIfActive { try ZipReader(path: path, maxEntries: 1_000_000) }
                } catch {
                    logger.warning("a run's result is left out of its sweep's zip", metadata: [LogKeys.jobID: "\(job.id)", "error": "\(error)"])
                    continue
                }
                defer { reader.close() }
                for entry in reader.entries {
                    let name = folder + "/" + entry.name
                    switch (entry.kind, entry.compression) {
                    case (.directory, _):
                        try await writer.write(ByteBuffer(bytes: archive.folder(name)))
                    case (.file, .stored), (.file, .deflated):
                        guard !entry.isEncrypted else { continue }
                        let (stored, crc) = try await threads.runIfActive { try reader.openStored(entry) }
                        defer { stored.close() }
                        try await writer.write(ByteBuffer(bytes: archive.file(
                            name, method: entry.compression == .stored ? .stored : .deflated, crc: crc,
                            compressedSize: entry.compressedSize, size: entry.size
                        )))
                        try await stored.send(to: &writer, reading: threads)
                    default:
                        continue  // Ferry's results hold only stored and deflated files and folders
                    }
                }
            }
            try await writer.write(ByteBuffer(bytes: archive.finish()))
            try await writer.finish(nil)
        }
        let name = JobsController.fileName(record.project) + "-sweep-results.zip"
        return Response(status: .ok, headers: [.contentType: "application/zip", .contentDisposition: "attachment; filename=\"\(name)\""], body: body)
    }

    /// `GET /api/v1/sweeps/{id}/table`: the runs table as CSV (place, parameters, status, times, summary numbers).
    @Sendable func table(_ request: Request, context: BackendContext) async throws -> Response {
        let details = try await sweep(try await ownedSweep(context), withRuns: true)
        let columns = details.summaryColumns ?? []
        var lines = [(["run"] + details.parameters + ["status", "exit_code", "run_seconds", "job_id"] + columns).map(Self.csvField).joined(separator: ",")]
        for run in details.runs ?? [] {
            let values = run.parameters.map(\.value)
            let ending = [run.job.status.rawValue, run.job.exitCode.map(String.init) ?? "", run.runSeconds.map { String(format: "%.3f", $0) } ?? "", run.job.id]
            let numbers = columns.map { name in run.summary?[name].map(Self.number) ?? "" }
            lines.append((["\(run.index)"] + values + ending + numbers).map(Self.csvField).joined(separator: ","))
        }
        let name = JobsController.fileName(details.project) + "-sweep.csv"
        return Response(
            status: .ok, headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\""],
            body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\r\n") + "\r\n"))
        )
    }

    // MARK: Helpers

    func ownedSweep(_ context: BackendContext) async throws -> JobStore.SweepRecord {
        let user = try context.requireUser()
        let id = try context.parameters.require("id")
        guard JobID.isValid(id), let record = try await store.sweep(id, ownerID: user.id) else {
            throw APIError(.notFound, code: "sweep.not_found", message: "There is no sweep \(id.prefix(40)) among yours.")
        }
        return record
    }

    func sweep(_ record: JobStore.SweepRecord, withRuns: Bool) async throws -> Sweep {
        let jobs = try await store.runs(ofSweep: record.id)
        var answer = Self.overview(record, counts: JobStore.counts(jobs))
        guard withRuns else { return answer }
        let now = Date()
        var runs: [Run] = [], columns: [String] = [], seen = Set<String>()
        for job in jobs {
            let summary = try await summaries.summary(of: job, dataDirectory: settings.dataDirectory, threads: settings.fileThreads)
            for name in (summary ?? [String: Double]()).keys.sorted() where seen.insert(name).inserted && columns.count < SummaryCache.maxColumns { columns.append(name) }
            let seconds = job.startedAt.map { (job.finishedAt ?? now).timeIntervalSince($0) }
            runs.append(Run(index: job.sweep?.index ?? 0, parameters: job.sweep?.parameters ?? [], job: job, runSeconds: seconds, summary: summary))
        }
        answer.runs = runs
        answer.summaryColumns = columns
        return answer
    }

    static func overview(_ record: JobStore.SweepRecord, counts: [String: Int]) -> Sweep {
        let open = counts.filter { JobStatus(rawValue: $0.key).map { !$0.isFinal } ?? false }.values.reduce(0, +)
        return Sweep(
            id: record.id, project: record.project, createdAt: record.createdAt, throttle: record.throttle, parameters: record.names,
            source: record.source, total: record.runs, counts: counts, finished: open == 0
        )
    }

    private func throttle(_ text: String?, runs: Int) throws -> Int {
        guard let text, !text.isEmpty else { return min(settings.defaultSweepThrottle, max(runs, 1)) }
        guard let value = Int(text), value >= 1 else {
            throw SweepPlan.invalid("invalid_throttle", "throttle must be a whole number of runs at once, 1 or more.")
        }
        return min(value, max(runs, 1))
    }

    /// `007-cutoff=10_seed=2`: the run's place (zero-padded so folders sort in order) and parameters,
    /// in plain characters only, at most 120.
    static func folderName(_ job: Job, of total: Int) -> String {
        let width = String(total).count
        let index = String(job.sweep?.index ?? 0)
        let place = String(repeating: "0", count: max(0, width - index.count)) + index
        let parameters = (job.sweep?.parameters ?? []).map { "\($0.name)=\($0.value)" }.joined(separator: "_")
        let safe = String(parameters.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._=+-".contains($0)) ? $0 : "_" }.prefix(110))
        return safe.isEmpty ? place : place + "-" + safe
    }

    static func csvField(_ text: String) -> String {
        // A leading =, +, - or @ would be a formula to a spreadsheet; a quote keeps it text.
        let guarded = ["=", "+", "@"].contains(where: text.hasPrefix) || (text.hasPrefix("-") && Double(text) == nil) ? "'" + text : text
        return guarded.contains(where: { ",\"\r\n".contains($0) }) ? "\"" + guarded.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : guarded
    }

    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// Summary numbers of finished runs, read once from each result's `summary.json` (results never
/// change once written): top-level numbers only, at most 64 KiB read and `maxColumns` kept.
let summaries = SummaryCache()

actor SummaryCache {
    static let maxColumns = 24
    static let maxEntries = 20_000
    private var known: [String: [String: Double]?] = [:]

    func summary(of job: Job, dataDirectory: String, threads: NIOThreadPool) async throws -> [String: Double]? {
        guard job.status.isFinal, job.resultBytes != nil else { return nil }
        if let cached = known[job.id] { return cached }
        let path = dataDirectory + "/results/\(job.id).zip"
        let read: [String: Double]? = try await threads.runIfActive { () -> [String: Double]? in
            guard let reader = try? ZipReader(path: path, maxEntries: 1_000_000) else { return nil }
            defer { reader.close() }
            guard let entry = reader.entries.first(where: { $0.name == "summary.json" && $0.kind == .file }),
                  let prefix = try? reader.prefix(of: entry, maxBytes: 64 << 10), !prefix.truncated,
                  let object = try? JSONDecoder().decode([String: SummaryValue].self, from: Data(prefix.bytes)) else { return nil }
            var numbers: [String: Double] = [:]
            for (name, value) in object where name.count <= 64 && !name.isEmpty {
                if case .number(let number) = value { numbers[name] = number }
            }
            let kept = Set(numbers.keys.sorted().prefix(SummaryCache.maxColumns))
            return numbers.filter { kept.contains($0.key) }
        }
        if known.count >= Self.maxEntries { known.removeAll() }
        known[job.id] = .some(read)
        return read
    }
}

/// A value of summary.json: a finite number, or anything else (left out). `true` is not 1.
enum SummaryValue: Decodable {
    case number(Double), other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if (try? container.decode(Bool.self)) != nil { self = .other; return }
        if let number = try? container.decode(Double.self), number.isFinite { self = .number(number); return }
        self = .other
    }
}

extension JobsController {
    /// Records a sweep of the accepted `bundle`: its row and a job per run, every run sharing the one
    /// uploaded file (`shareBundles`), then lets the first
    /// `throttle` go. The bundle's temporary file is gone afterwards; on a failure nothing is kept.
    func record(sweep plan: SweepPlan, source: String, throttle: Int, bundle: AcceptedBundle, user: User) async throws -> JobStore.SweepRecord {
        let now = Date(), sweepID = UUID().uuidString.lowercased()
        let reason = SweepTurns.waitingReason(throttle: throttle)
        let runs = plan.runs.indices.map { index in
            let parameters = plan.parameters(ofRun: index)
            let job = Job(
                id: UUID().uuidString.lowercased(), project: bundle.report.project, owner: user.username, status: .submitted, reason: reason,
                submittedAt: now, timeLimit: bundle.limits?.timeLimitSeconds ?? settings.defaultTimeLimit,
                memoryLimit: bundle.limits?.memoryLimitMiB ?? settings.defaultMemoryLimit,
                sweep: JobSweep(id: sweepID, index: index + 1, parameters: parameters)
            )
            return (job: job, parameters: parameters)
        }
        guard try await shareBundles(runs.map { (from: bundle.path, to: $0.job.id) }) else {
            throw APIError(.internalServerError, code: "upload.storage", message: "The upload cannot be stored right now; try again later.")
        }
        let record = JobStore.SweepRecord(
            id: sweepID, ownerID: user.id, project: bundle.report.project, createdAt: now, throttle: throttle,
            names: plan.names, source: source, runs: plan.runs.count
        )
        do {
            try await store.insert(sweep: record, runs: runs, bundleBytes: bundle.bytes)
        } catch {
            for run in runs { unlink(settings.bundles + "/\(run.job.id).zip") }
            throw error
        }
        unlink(bundle.path)
        logger.info("sweep created", metadata: ["sweep": "\(sweepID)", "runs": "\(runs.count)", "throttle": "\(throttle)"])
        await turns.release(sweep: sweepID)
        return record
    }
}
