import Foundation
import Subprocess
import SystemPackage

/// Slurm through the command-line tools every submit host has, as Open OnDemand's Slurm adapter
/// does: `sbatch --parsable` submits, `squeue` says what waits (with Slurm's reason) and what runs,
/// `sacct` (slurmdbd) says how a job ended, `scontrol` where accounting is off, and `scancel` cancels.
/// The clients find the cluster as they always do (`SLURM_CONF`, or the host's slurm.conf).
/// What the tools print is parsed by the static functions below, which the unit tests hold to
/// Slurm 22.05's output.
struct SlurmScheduler: BatchScheduler {
    /// Slurm's own words for a job that ended; a missing or unknown word is read as "still there".
    static let endedStates: Set<String> = [
        "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "DEADLINE", "REVOKED",
    ]

    /// Checks that the cluster answers and has the partition (when one is set), so that a unit that
    /// cannot submit says so at start instead of failing every job.
    func check(partition: String?) async throws {
        let answer = try await Self.tool("sinfo", ["-h", "-o", "%P"] + (partition.map { ["-p", $0] } ?? []))
        guard answer.succeeded else { throw SchedulerError("the Slurm cluster does not answer (sinfo: \(answer.problem))") }
        if let partition, answer.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw SchedulerError("the Slurm cluster has no partition \(partition)")
        }
    }

    func submit(_ job: BatchJob) async throws -> String {
        // The script goes on standard input: Slurm keeps its own copy, and no file of it is left to change.
        let answer = try await Self.tool("sbatch", Self.submitArguments(job), input: job.script)
        guard answer.succeeded, let id = Self.parseSubmitted(answer.output) else {
            throw SchedulerError("Slurm did not take the job (sbatch: \(answer.problem))")
        }
        return id
    }

    func states(of ids: [String]) async throws -> [String: BatchJobState] {
        guard !ids.isEmpty else { return [:] }
        let list = ids.joined(separator: ",")
        // squeue answers 1 when it knows none of the ids (all long finished): that is not a failure.
        let queue = try await Self.tool("squeue", ["-h", "--states=all", "-j", list, "-o", "%i|%T|%r|%S"])
        guard queue.succeeded || queue.problem.contains("Invalid job id") else { throw SchedulerError("Slurm does not answer (squeue: \(queue.problem))") }
        var states = Self.parseQueue(queue.output)
        let ended = ids.filter { states[$0] == nil }
        guard !ended.isEmpty else { return states }
        // Ended (or unknown to the controller): how, from accounting, else from the controller.
        let accounting = try await Self.tool("sacct", ["-X", "-n", "-P", "-j", ended.joined(separator: ","), "-o", "JobID,State,ExitCode,Start,End"])
        if accounting.succeeded {
            states.merge(Self.parseAccounting(accounting.output)) { queued, _ in queued }
        }
        for id in ended where states[id] == nil {
            let control = try await Self.tool("scontrol", ["show", "job", "-o", id])
            if control.succeeded, let state = Self.parseControl(control.output) { states[id] = state }
        }
        return states
    }

    func cancel(_ id: String) async throws {
        let answer = try await Self.tool("scancel", [id])
        // A job that already ended needs no cancel.
        guard answer.succeeded || answer.problem.contains("already completing or completed") || answer.problem.contains("Invalid job id") else {
            throw SchedulerError("Slurm did not cancel job \(id) (scancel: \(answer.problem))")
        }
    }

    func release(_ id: String) async throws {
        let answer = try await Self.tool("scontrol", ["release", id])
        // A task let go before (a unit that restarted after releasing it) is not held any more.
        guard answer.succeeded || answer.problem.contains("not held") || answer.problem.contains("already") else {
            throw SchedulerError("Slurm did not let job \(id) go (scontrol release: \(answer.problem))")
        }
    }

    func find(named name: String) async throws -> String? {
        // "Not found" must be an answer, never a failure to ask: the caller submits when it is nil.
        let queue = try await Self.tool("squeue", ["-h", "--states=all", "-n", name, "-o", "%i"])
        guard queue.succeeded else { throw SchedulerError("Slurm does not answer (squeue: \(queue.problem))") }
        if let newest = Self.newestID(queue.output) { return newest }
        let accounting = try await Self.tool("sacct", ["-X", "-n", "-P", "-a", "--name=\(name)", "-S", "now-30days", "-o", "JobIDRaw"])
        // Without accounting (slurmdbd not configured) the controller's answer is all there is.
        guard accounting.succeeded || accounting.problem.contains("disabled") else {
            throw SchedulerError("Slurm's accounting does not answer (sacct: \(accounting.problem))")
        }
        return Self.newestID(accounting.output)
    }

    // MARK: What Slurm is told and what it says

    static func submitArguments(_ job: BatchJob) -> [String] {
        var arguments = [
            "--parsable", "--job-name=\(job.name)", "--no-requeue", "--export=NONE", "--nodes=1", "--ntasks=1",
            "--cpus-per-task=\(job.cpus)", "--mem=\(job.memoryMiB)M", "--time=\(job.timeLimitMinutes)",
            "--chdir=\(job.workingDirectory)", "--output=\(job.standardOutput)", "--error=\(job.standardError)", "--open-mode=append",
        ]
        if let partition = job.partition { arguments.append("--partition=\(partition)") }
        if let account = job.account { arguments.append("--account=\(account)") }
        if let qos = job.qos { arguments.append("--qos=\(qos)") }
        if let array = job.array { arguments += ["--array=1-\(array.tasks)%\(array.throttle)", "--hold"] }
        return arguments
    }

    /// `sbatch --parsable` prints `id` or `id;cluster` (an array's own id for an array).
    static func parseSubmitted(_ output: String) -> String? {
        let id = output.split(whereSeparator: \.isNewline).last.map { String($0.split(separator: ";").first ?? "") }?
            .trimmingCharacters(in: .whitespaces)
        guard let id, !id.isEmpty, id.allSatisfy(\.isNumber) else { return nil }
        return id
    }

    /// `squeue -o '%i|%T|%r|%S'`: jobs that wait or run (ended ones are left to `parseAccounting`).
    static func parseQueue(_ output: String) -> [String: BatchJobState] {
        var states: [String: BatchJobState] = [:]
        for line in output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 4, let state = liveState(fields[1], reason: fields[2], start: fields[3]) else { continue }
            states[fields[0]] = state
        }
        return states
    }

    /// `sacct -X -P -o JobID,State,ExitCode,Start,End` (JobID: `42`, or `41_3` for an array's task).
    static func parseAccounting(_ output: String) -> [String: BatchJobState] {
        var states: [String: BatchJobState] = [:]
        for line in output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 5, let state = state(fields[1], exitCode: fields[2], start: fields[3], end: fields[4], reason: "") else { continue }
            states[fields[0]] = state
        }
        return states
    }

    /// `scontrol show job -o ID`: one line of `Key=Value` pairs.
    static func parseControl(_ output: String) -> BatchJobState? {
        func value(_ key: String) -> String {
            guard let range = output.range(of: "(^| )\(key)=[^ ]*", options: .regularExpression) else { return "" }
            return String(output[range].drop { $0 == " " }.dropFirst(key.count + 1))
        }
        return state(value("JobState"), exitCode: value("ExitCode"), start: value("StartTime"), end: value("EndTime"), reason: value("Reason"))
    }

    /// A state word ("CANCELLED by 0" counts by its first word) with its exit code and times.
    static func state(_ word: String, exitCode: String, start: String, end: String, reason: String) -> BatchJobState? {
        let name = String(word.split(separator: " ").first ?? "")
        if let live = liveState(name, reason: reason, start: start) { return live }
        guard endedStates.contains(name) else { return nil }
        let codes = exitCode.split(separator: ":").map { Int32($0) ?? 0 }
        let code = codes.first ?? 0, signal = codes.count > 1 && codes[1] != 0 ? codes[1] : nil
        let kind: BatchJobEnd.Kind = switch name {
        case "COMPLETED", "FAILED": .exited
        case "TIMEOUT", "DEADLINE": .timedOut
        case "OUT_OF_MEMORY": .outOfMemory
        case "CANCELLED": .canceled
        default: .infrastructure(name)
        }
        return .ended(BatchJobEnd(kind: kind, exitCode: code, signal: signal, startedAt: date(start), endedAt: date(end)))
    }

    private static func liveState(_ name: String, reason: String, start: String) -> BatchJobState? {
        switch name {
        case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD":
            return .pending(reason: reason.isEmpty || reason == "(null)" ? "None" : reason)
        case "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING", "SPECIAL_EXIT":
            return .running(since: date(start))
        default:
            return nil
        }
    }

    /// Slurm's times are the cluster's local time, without a zone (`2026-12-03T21:28:35`); `Unknown`,
    /// `None` and `N/A` are no time.
    static func date(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .current
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.date(from: text)
    }

    private static func newestID(_ output: String) -> String? {
        output.split(whereSeparator: \.isNewline).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.max().map(String.init)
    }

    // MARK: Running the tools

    private struct Answer {
        var succeeded: Bool
        var output: String
        var error: String
        /// What went wrong, in Slurm's words (its first lines on stderr).
        var problem: String {
            let text = error.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? "no answer" : String(text.split(whereSeparator: \.isNewline).prefix(3).joined(separator: "; ").prefix(500))
        }
    }

    private static func tool(_ name: String, _ arguments: [String], input: String = "") async throws -> Answer {
        do {
            let result = try await Subprocess.run(
                .name(name), arguments: Arguments(arguments), workingDirectory: FilePath("/"), input: .string(input),
                output: .string(limit: 4 << 20), error: .string(limit: 256 << 10)
            )
            return Answer(succeeded: result.terminationStatus.isSuccess, output: result.standardOutput, error: result.standardError)
        } catch let error as SubprocessError {
            throw SchedulerError("\(name) cannot be started (is Slurm's client installed on this host?): \(error)")
        }
    }
}

/// The scheduler failed the unit (not the job): the job is tried again.
struct SchedulerError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}
