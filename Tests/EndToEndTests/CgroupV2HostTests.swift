import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// The compose stack on a cgroup v2 host, as operators' current Debian, Ubuntu and RHEL hosts are:
/// scripts/test-compose boots one (qemu with Debian's kernel, Debian's docker.io; this machine is
/// cgroup v1), starts the stack there with the same compose file and images, and points
/// FERRY_TEST_COMPOSE_URL and DOCKER_HOST at it. The units run in their containers as compose
/// configures them: cap_add SYS_ADMIN, not privileged, the container's own cgroup namespace with
/// /sys/fs/cgroup mounted read-only by Docker.
@Suite("The compose stack on a cgroup v2 host", .serialized)
struct CgroupV2HostTests {
    let stack: ComposeStack
    static let units = ["processing-unit-1", "processing-unit-2"]

    init() throws {
        stack = try ComposeStack.shared.get()
    }

    private func inUnit(_ unit: String, _ command: String) async throws -> String {
        try await stack.shell(in: unit, command)
    }

    /// Each unit passed its start-up check on cgroup v2: it made its read-only cgroup mount writable,
    /// moved itself into a child group (v2 allows controllers below a group only when the group holds
    /// no process) and enabled memory and pids for the jobs' groups; a job then runs.
    @Test func theUnitsStartOnCgroupV2AndLimitJobsFromTheirOwnGroup() async throws {
        for unit in Self.units {
            let controllers = try await inUnit(unit, "cat /sys/fs/cgroup/cgroup.controllers")
            #expect(controllers.contains("memory") && controllers.contains("pids"), "\(unit) is not on cgroup v2: \(controllers)")
            #expect(try await inUnit(unit, "cat /proc/1/cgroup").trimmingCharacters(in: .whitespacesAndNewlines) == "0::/ferry-unit")
            let enabled = try await inUnit(unit, "cat /sys/fs/cgroup/cgroup.subtree_control")
            #expect(enabled.contains("memory") && enabled.contains("pids"), "\(unit) enabled \(enabled)")
            let mount = try await inUnit(unit, "grep ' /sys/fs/cgroup ' /proc/1/mountinfo")
            #expect(mount.contains(" - cgroup2 ") && mount.contains(" /sys/fs/cgroup rw,"), "\(unit) mounts \(mount)")
            // In the unit's container only: every other container's stays read-only.
            let other = try await stack.compose(["exec", "-T", unit.replacingOccurrences(of: "processing-unit", with: "consumer"), "grep", " /sys/fs/cgroup ", "/proc/self/mountinfo"])
            #expect(other.output.contains(" /sys/fs/cgroup ro,"), "\(other.output)")
            let logs = try await stack.compose(["logs", "--no-color", unit])
            #expect(logs.output.contains("cgroups v2"), "\(unit) said: \(logs.output.suffix(2000))")
        }
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("cgroup-v2", on: stack)
        let job = try await alice.submit(try Bundles.folder("hello", files: ["code.py": "open('output/hello.txt', 'w').write('hello from v2')\n"], in: work), fileName: "hello.zip")
        let done = try await alice.waitUntilFinished(job.id, seconds: 300)
        #expect(done.status == "succeeded", "\(done)")
        #expect(try await alice.result(job.id, into: work)["hello.txt"] == "hello from v2")
    }

    /// Every limit ends its job with its own reason, the peak memory is the whole job's (all its
    /// processes together, from its cgroup), and when the jobs are over no process of theirs is
    /// left in either unit and no job group remains.
    @Test func eachLimitEndsItsJobWithItsReasonAndNothingOfItStaysBehind() async throws {
        let work = try TemporaryDirectory()
        let mallory = try await Researcher.signUp("cgroup-v2-limits", on: stack)
        func run(_ name: String, _ code: String, fields: [String: String] = [:]) async throws -> APIJob {
            let job = try await mallory.submit(try Bundles.folder(name, files: ["code.py": code], in: work), fileName: name + ".zip", fields: fields)
            return try await mallory.waitUntilFinished(job.id, seconds: 600)
        }
        async let hog = run("hog", HostileJobs.memoryHog, fields: ["memoryLimit": "64"])
        async let shared = run("four", Self.fourProcessesHoldingMemory, fields: ["memoryLimit": "512"])
        async let forks = run("forks", Self.processCounter, fields: ["timeLimit": "300"])
        async let bomb = run("bomb", HostileJobs.forkBomb, fields: ["timeLimit": "60"])
        async let filler = run("filler", HostileJobs.diskFiller)
        async let loop = run("loop", HostileJobs.endlessLoop, fields: ["timeLimit": "5"])

        struct Manifest: Decodable { var peakMemoryBytes: UInt64? }
        func peak(_ id: String) async throws -> UInt64? {
            let response = try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/jobs/\(id)/manifest", headers: mallory.auth))
            return try JSONDecoder().decode(Manifest.self, from: Data(response.body)).peakMemoryBytes
        }

        let hogged = try await hog
        #expect(hogged.status == "killed" && hogged.reason?.contains("memory") == true, "\(hogged)")
        let hogPeak = try #require(try await peak(hogged.id), "the memory hog's manifest has no peak memory")
        #expect(hogPeak >= 48 << 20 && hogPeak <= 80 << 20, "peak \(hogPeak) for a 64 MiB limit")

        // Four processes of 48 MiB each at once: one process's maximum resident size would say
        // about 48 MiB; the job's group saw them all.
        let four = try await shared
        #expect(four.status == "succeeded", "\(four)")
        let fourPeak = try #require(try await peak(four.id), "the manifest has no peak memory")
        #expect(fourPeak >= 4 * 48 << 20, "peak \(fourPeak) for four processes of 48 MiB")

        let counted = try await forks
        #expect(counted.status == "succeeded", "\(counted)")
        let report = try JSONDecoder().decode([String: String].self, from: Data(try #require(try await mallory.result(counted.id, into: work)["processes.json"]).utf8))
        // The default limit is 256 processes (unit.max-processes); Python and its threads hold a few.
        let started = Int(report["started"] ?? "") ?? -1
        #expect(started > 200 && started < 256 && report["error"] == "BlockingIOError", "\(report)")

        let bombed = try await bomb
        // A fork bomb ends at whichever limit it reaches first: its forks refused (failed), memory
        // (killed) or time (timed_out, when the init reaps its dead children fast enough).
        #expect(["killed", "failed", "timed_out"].contains(bombed.status), "\(bombed)")
        let filled = try await filler
        #expect(filled.status == "killed" && filled.reason?.contains("output size") == true, "\(filled)")
        let looped = try await loop
        #expect(looped.status == "timed_out" && looped.reason?.contains("time limit of 5 s") == true, "\(looped)")

        for unit in Self.units {
            let left = try await stack.jobProcesses(in: unit)
            #expect(left.isEmpty, "\(unit) still holds job processes: \(left)")
            let groups = try await inUnit(unit, "ls /sys/fs/cgroup")
            #expect(!groups.contains("ferry-job-") && !groups.contains("ferry-probe-"), "\(unit) kept job groups: \(groups)")
        }
    }

    /// Four processes that each hold 48 MiB at the same time, then end.
    static let fourProcessesHoldingMemory = """
        import os, time
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                block = bytearray(48 << 20)
                for i in range(0, len(block), 4096): block[i] = 1
                time.sleep(8)
                os._exit(0)
            children.append(pid)
        for pid in children: os.waitpid(pid, 0)
        open('output/done.txt', 'w').write('done')
        """

    /// Starts sleeping processes until the kernel refuses one and writes `output/processes.json`:
    /// how many it started and the error that stopped it; the sleepers are left for Ferry to end.
    static let processCounter = """
        import json, os, time
        started, error = 0, "none"
        try:
            while started < 5000:
                pid = os.fork()
                if pid == 0:
                    time.sleep(600)
                    os._exit(0)
                started += 1
        except OSError as failure:
            error = type(failure).__name__
        json.dump({"started": str(started), "error": error}, open("output/processes.json", "w"))
        """
}
