import Configuration
import FerryContracts
import Foundation
@testable import ProcessingUnit
import Testing

/// What the Slurm executor reads from Slurm 22.05's tools and what it hands them. Each sample is
/// what the tools printed on the private test cluster (`scripts/lib/slurm.sh`).
@Suite("Slurm executor: Slurm's words")
struct SlurmSchedulerTests {
    @Test func sbatchParsableAnswersTheIDWithOrWithoutACluster() {
        #expect(SlurmScheduler.parseSubmitted("42\n") == "42")
        #expect(SlurmScheduler.parseSubmitted("42;ferry-test\n") == "42")
        #expect(SlurmScheduler.parseSubmitted("sbatch: error: Batch job submission failed\n") == nil)
        #expect(SlurmScheduler.parseSubmitted("") == nil)
    }

    @Test func squeueSaysWhatWaitsWithItsReasonAndWhatRuns() {
        let states = SlurmScheduler.parseQueue("""
        7|PENDING|Resources|N/A
        8|PENDING|Priority|2026-12-06T10:00:00
        9|RUNNING|None|2026-12-06T09:58:01
        10|COMPLETING|None|2026-12-06T09:58:01
        11|COMPLETED|None|2026-12-06T09:58:01
        41_5|PENDING|JobArrayTaskLimit|N/A
        41_6|PENDING|JobHeldUser|N/A
        """)
        #expect(states["7"] == .pending(reason: "Resources"))
        #expect(states["8"] == .pending(reason: "Priority"))
        guard case .running(let since) = states["9"] else { Issue.record("9 is not running: \(String(describing: states["9"]))"); return }
        #expect(since != nil)
        guard case .running = states["10"] else { Issue.record("a completing job still runs"); return }
        #expect(states["41_5"] == .pending(reason: "JobArrayTaskLimit"))
        #expect(states["41_6"] == .pending(reason: "JobHeldUser"))
        // Ended jobs are taken from accounting, with their exit codes.
        #expect(states["11"] == nil)
    }

    @Test func sacctEndStatesMapToFerrysStatuses() {
        let states = SlurmScheduler.parseAccounting("""
        20|COMPLETED|0:0|2026-12-06T09:00:00|2026-12-06T09:00:05
        21|FAILED|3:0|2026-12-06T09:00:00|2026-12-06T09:00:01
        22|TIMEOUT|0:0|2026-12-06T09:00:00|2026-12-06T09:01:30
        23|OUT_OF_MEMORY|0:125|2026-12-06T09:00:00|2026-12-06T09:00:02
        24|CANCELLED by 0|0:15|2026-12-06T09:00:00|2026-12-06T09:00:09
        25|NODE_FAIL|0:0|2026-12-06T09:00:00|2026-12-06T09:03:00
        26|PREEMPTED|0:0|2026-12-06T09:00:00|2026-12-06T09:03:00
        27|BOOT_FAIL|0:0|None|2026-12-06T09:03:00
        28|PENDING|0:0|Unknown|Unknown
        41_3|COMPLETED|2:0|2026-12-06T09:10:49|2026-12-06T09:10:57
        41_[4-5%2]|PENDING|0:0|Unknown|Unknown
        """)
        func kind(_ id: String) -> BatchJobEnd.Kind? {
            if case .ended(let end) = states[id] { return end.kind }
            return nil
        }
        #expect(kind("20") == .exited)
        guard case .ended(let failed) = states["21"] else { Issue.record("21 did not end"); return }
        #expect(failed.kind == .exited && failed.exitCode == 3 && failed.signal == nil)
        #expect(failed.startedAt != nil && failed.endedAt != nil)
        #expect(kind("22") == .timedOut)
        #expect(kind("23") == .outOfMemory)
        guard case .ended(let canceled) = states["24"] else { Issue.record("24 did not end"); return }
        #expect(canceled.kind == .canceled && canceled.signal == 15)
        #expect(kind("25") == .infrastructure("NODE_FAIL"))
        #expect(kind("26") == .infrastructure("PREEMPTED"))
        #expect(kind("27") == .infrastructure("BOOT_FAIL"))
        #expect(states["28"] == .pending(reason: "None"))
        // An array's task by its own id (JobID, not the raw number Slurm gives a task once it started).
        guard case .ended(let task) = states["41_3"] else { Issue.record("41_3 did not end"); return }
        #expect(task.kind == .exited && task.exitCode == 2)
    }

    @Test func scontrolIsReadWhereAccountingIsOff() {
        let line = "JobId=31 JobName=ferry-x-1 UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01 StartTime=2026-12-06T09:00:00 EndTime=2026-12-06T09:00:01"
        guard case .ended(let end) = SlurmScheduler.parseControl(line) else { Issue.record("not ended"); return }
        #expect(end.kind == .exited && end.exitCode == 3)
        let pending = "JobId=32 JobName=ferry-y-1 JobState=PENDING Reason=Priority Dependency=(null) ExitCode=0:0 StartTime=Unknown EndTime=Unknown"
        #expect(SlurmScheduler.parseControl(pending) == .pending(reason: "Priority"))
    }

    @Test func submissionCarriesTheLimitsLogsAndPlaceAndNothingElse() {
        let job = BatchJob(
            name: "ferry-abc-1", script: "#!/bin/bash\n", workingDirectory: "/srv/ferry/work/abc/proj", standardOutput: "/srv/ferry/jobs/abc/stdout.log",
            standardError: "/srv/ferry/jobs/abc/stderr.log", cpus: 2, memoryMiB: 512, timeLimitMinutes: 3, partition: "short", account: "lab-a", qos: nil
        )
        let arguments = SlurmScheduler.submitArguments(job)
        for expected in [
            "--parsable", "--job-name=ferry-abc-1", "--no-requeue", "--export=NONE", "--cpus-per-task=2", "--mem=512M", "--time=3",
            "--chdir=/srv/ferry/work/abc/proj", "--output=/srv/ferry/jobs/abc/stdout.log", "--error=/srv/ferry/jobs/abc/stderr.log",
            "--open-mode=append", "--partition=short", "--account=lab-a",
        ] {
            #expect(arguments.contains(expected), "\(expected) missing from \(arguments)")
        }
        #expect(!arguments.contains { $0.hasPrefix("--qos") })
        // The script goes on standard input, never as a file the job could change.
        #expect(!arguments.contains("#!/bin/bash\n"))
    }

    @Test func theBatchScriptQuotesEveryWordAndEnforcesTheExactTimeLimit() {
        let script = ClusterExecutor.batchScript(
            jobID: "abc", attempt: 2, command: ["/usr/bin/bwrap", "--bind", "/w/it's here", "/job"], environment: ["HOME": "/tmp", "FERRY_JOB_ID": "abc"],
            filter: "/var/lib/ferry-unit/job-seccomp.bpf", timeLimitSeconds: 90, report: "/d/jobs/abc/cluster-run"
        )
        #expect(script.hasPrefix("#!/bin/bash\n"))
        #expect(script.contains("'/usr/bin/timeout' '--kill-after=5' '90' '/usr/bin/env' '-i' 'FERRY_JOB_ID=abc' 'HOME=/tmp' '/usr/bin/bwrap' '--bind' '/w/it'\\''s here' '/job'"))
        #expect(script.contains("exec 3< '/var/lib/ferry-unit/job-seccomp.bpf'"))
        #expect(script.contains("report='/d/jobs/abc/cluster-run'"))
        #expect(ClusterExecutor.timeLimitMinutes(seconds: 90) == 3)
        #expect(ClusterExecutor.timeLimitMinutes(seconds: 60) == 2)
        let plain = ClusterExecutor.batchScript(jobID: "abc", attempt: 1, command: ["python", "code.py"], environment: [:], filter: nil, timeLimitSeconds: 5, report: "/r")
        #expect(!plain.contains("exec 3<"))
    }

    /// The script really runs (bash), writes its report and passes code.py's exit code on.
    @Test func theBatchScriptReportsHowCodeEnded() throws {
        let folder = NSTemporaryDirectory() + "ferry-batch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (command, limit, expected) in [
            (["/bin/sh", "-c", "exit 3"], 30, ClusterRunReport(started: true, timedOut: false, exitCode: 3)),
            (["/bin/sh", "-c", "exit 0"], 30, ClusterRunReport(started: true, timedOut: false, exitCode: 0)),
            (["/bin/sleep", "10"], 1, ClusterRunReport(started: true, timedOut: true, exitCode: 124)),
        ] as [([String], Int, ClusterRunReport)] {
            let script = ClusterExecutor.batchScript(jobID: "t", attempt: 1, command: command, environment: ["A": "b"], filter: nil, timeLimitSeconds: limit, report: folder + "/cluster-run")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", script]
            try process.run()
            process.waitUntilExit()
            var report = ClusterRunReport.read(in: folder)
            // The script ends with the code it reports, which the scheduler records.
            #expect(report.exitCode == process.terminationStatus, "\(command)")
            report.peakMemoryBytes = nil  // the test's own cgroup; a node's is the job's
            // timeout answers 124, or 137 where the command needed its SIGKILL (the test runner's children ignore SIGTERM).
            if expected.timedOut, report.exitCode == 137 { report.exitCode = 124 }
            #expect(report == expected, "\(command)")
        }
    }

    @Test func reportsAreReadStrictly() {
        #expect(ClusterRunReport.parse("started 1765000000\n") == ClusterRunReport(started: true))
        #expect(ClusterRunReport.parse("exit 3 123456\n") == ClusterRunReport(started: true, timedOut: false, exitCode: 3, peakMemoryBytes: 123456))
        #expect(ClusterRunReport.parse("timeout 124 0\n") == ClusterRunReport(started: true, timedOut: true, exitCode: 124, peakMemoryBytes: nil))
        #expect(ClusterRunReport.parse("") == ClusterRunReport())
    }

    @Test func waitingReasonsSpeakToResearchersAndKeepSlurmsWord() {
        #expect(ClusterExecutor.waitingReason("Priority").contains("higher priority"))
        #expect(ClusterExecutor.waitingReason("JobArrayTaskLimit").contains("other runs of its sweep"))
        #expect(ClusterExecutor.waitingReason("Resources").contains("(Slurm: Resources)"))
        #expect(ClusterExecutor.waitingReason("QOSMaxJobsPerUserLimit").contains("limits"))
        #expect(ClusterExecutor.waitingReason("ReqNodeNotAvail, UnavailableNodes:ferry-node").contains("not available"))
        #expect(ClusterExecutor.waitingReason("Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions").contains("not available"))
    }

    @Test func clusterSettingsRefuseWhatIsNotASlurmName() throws {
        for bad in ["a b", "x;rm -rf /", "--uid=0", String(repeating: "p", count: 65)] {
            let error = #expect(throws: ConfigurationError.self) {
                try ClusterSettings(reader: ConfigReader(provider: InMemoryProvider(values: [AbsoluteConfigKey(stringLiteral: ConfigurationKeys.slurmPartition): .init(stringLiteral: bad)])))
            }
            #expect(error?.key == ConfigurationKeys.slurmPartition)
        }
        let good = try ClusterSettings(reader: ConfigReader(provider: InMemoryProvider(values: ["slurm.partition": "gpu-short", "slurm.poll-seconds": 1.0])))
        #expect(good.partition == "gpu-short" && good.pollInterval == .seconds(1))
    }
}
