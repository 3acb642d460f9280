import FerryContracts
import FerryHTTPClient
import FerryTestSupport
import FerryZip
import Foundation
import Testing

/// Sweeps on the real stack (broker, Producer, Consumer, unit, real Python), through the public API:
/// every run gets its own parameters, the throttle holds (from the jobs' own histories), the
/// environment is built once for the whole sweep, cancel stops every run, failed runs run again, and
/// the combined zip holds every run's output.
@Suite("Sweeps end to end", .runningStack)
struct SweepTests {
    var stack: Stack { Stack.current! }

    struct APISweep: Decodable {
        struct Run: Decodable {
            var index: Int
            var parameters: [SweepParameter]
            var job: APIJob
            var runSeconds: Double?
            var summary: [String: Double]?
        }
        var id: String
        var total: Int
        var throttle: Int
        var finished: Bool
        var counts: [String: Int]
        var summaryColumns: [String]?
        var runs: [Run]?
    }

    func create(_ researcher: Researcher, _ zip: String, fields: [String: String]) async throws -> APISweep {
        let response = try await researcher.upload(zip, fileName: "sweep.zip", fields: fields, path: "/api/v1/sweeps")
        try #require(response.status == 201, "the sweep answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        return try response.decode(APISweep.self)
    }

    func sweep(_ researcher: Researcher, _ id: String) async throws -> APISweep {
        try await stack.client.json("GET", stack.backendURL + "/api/v1/sweeps/\(id)", headers: researcher.auth).decode(APISweep.self)
    }

    func waitUntilFinished(_ researcher: Researcher, _ id: String, seconds: Double = 300) async throws -> APISweep {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let current = try await sweep(researcher, id)
            if current.finished { return current }
            try await Task.sleep(for: .milliseconds(250))
        }
        Issue.record("sweep \(id) did not finish within \(seconds) s; services said:\n\(stack.logs)")
        throw CancellationError()
    }

    struct Entry: Decodable { var status: String; var at: Date }
    struct History: Decodable { var history: [Entry] }

    func history(_ researcher: Researcher, _ job: String) async throws -> [Entry] {
        try await stack.client.json("GET", stack.backendURL + "/api/v1/jobs/\(job)/history", headers: researcher.auth).decode(History.self).history
    }

    static let code = """
    import json, os, time
    params = json.load(open("params.json"))
    time.sleep(1.5)
    seen = {"params": params, "env": {k: v for k, v in os.environ.items() if k.startswith("FERRY_PARAM_") or k in ("FERRY_RUN_INDEX", "FERRY_SWEEP_ID")}}
    json.dump(seen, open("output/seen.json", "w"))
    json.dump({"product": params["cutoff"] * params["seed"], "loss": 1 / params["cutoff"]}, open("output/summary.json", "w"))
    """

    @Test func aThreeByTwoGridRunsSixJobsWithinItsThrottleOnOneEnvironment() async throws {
        let work = try TemporaryDirectory()
        let researcher = try await Researcher.signUp("sami", on: stack)
        // Requirements of this test alone, so its environment is built here, once.
        let bundle = try Bundles.folder("grid", files: ["code.py": Self.code, "requirements.txt": "six==1.15.0\n"], in: work)
        let created = try await create(researcher, bundle, fields: ["grid": "cutoff=8,10,12\nseed=1..2", "throttle": "2"])
        #expect(created.total == 6 && created.throttle == 2)
        let done = try await waitUntilFinished(researcher, created.id)
        let runs = try #require(done.runs)
        #expect(runs.map(\.job.status) == Array(repeating: "succeeded", count: 6), "\(runs.map { "\($0.job.status): \($0.job.reason ?? "")" })")

        // Each run was given its own parameters, in params.json and in its environment.
        let expected: [(String, String)] = [("8", "1"), ("8", "2"), ("10", "1"), ("10", "2"), ("12", "1"), ("12", "2")]
        for (run, (cutoff, seed)) in zip(runs, expected) {
            #expect(run.parameters == [.init(name: "cutoff", value: cutoff), .init(name: "seed", value: seed)])
            let files = try await researcher.result(run.job.id, into: work)
            let seen = try JSONSerialization.jsonObject(with: Data((files["seen.json"] ?? "").utf8)) as? [String: [String: Any]]
            #expect(seen?["params"]?["cutoff"] as? Int == Int(cutoff) && seen?["params"]?["seed"] as? Int == Int(seed), "\(files)")
            #expect(seen?["env"] as? [String: String] == [
                "FERRY_PARAM_CUTOFF": cutoff, "FERRY_PARAM_SEED": seed, "FERRY_RUN_INDEX": "\(run.index)", "FERRY_SWEEP_ID": created.id,
            ])
            #expect(run.summary?["product"] == Double(Int(cutoff)! * Int(seed)!))
        }
        #expect(done.summaryColumns == ["loss", "product"])

        // Never more than 2 at once, from each job's own history: from queued to its end.
        var spans: [(start: Date, end: Date)] = []
        for run in runs {
            let entries = try await history(researcher, run.job.id)
            let start = try #require(entries.first { $0.status == "queued" }?.at), end = try #require(entries.last?.at)
            spans.append((start, end))
        }
        let most = spans.map { span in spans.filter { $0.start <= span.start && span.start < $0.end }.count }.max() ?? 0
        #expect(most == 2, "at most \(most) runs were out at once; the throttle is 2")

        // One environment build for the sweep; every other run reused it.
        let built = try runs.filter { run in
            try String(contentsOfFile: stack.data.file("jobs/\(run.job.id)/manifest.json"), encoding: .utf8).contains(#""cacheHit" : false"#)
        }
        #expect(built.count == 1, "the environment was built \(built.count) times")

        // All results in one zip, a folder per run named by its parameters.
        let path = work.file("all.zip")
        let response = try await stack.client.execute(HTTPRequest(url: stack.frontendURL + "/api/v1/sweeps/\(created.id)/results", headers: researcher.auth, destination: .file(path: path)))
        #expect(response.status == 200 && response.headers["content-type"] == "application/zip")
        let reader = try ZipReader(path: path)
        let names = Set(reader.entries.map(\.name))
        for (run, (cutoff, seed)) in zip(runs, expected) {
            let folder = "\(run.index)-cutoff=\(cutoff)_seed=\(seed)/"
            #expect(names.contains(folder + "seen.json") && names.contains(folder + "summary.json"), "\(names.sorted())")
            let entry = try #require(reader.entries.first { $0.name == folder + "summary.json" })
            let summary = try JSONSerialization.jsonObject(with: Data(try reader.contents(of: entry, maxBytes: 4096))) as? [String: Any]
            #expect(summary?["product"] as? Int == Int(cutoff)! * Int(seed)!)
        }
        // Python's own zipfile reads it whole and checks every CRC.
        let check = try await ChildProcess.run("/usr/bin/python3", ["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip(), len(z.namelist()))", path])
        #expect(check.output.hasPrefix("None 18"), "\(check.output)")

        // The table as CSV, with the summary's numbers.
        let table = try await stack.client.execute(HTTPRequest(url: stack.backendURL + "/api/v1/sweeps/\(created.id)/table", headers: researcher.auth))
        let lines = String(decoding: table.body, as: UTF8.self).split(separator: "\r\n")
        #expect(lines.first == "run,cutoff,seed,status,exit_code,run_seconds,job_id,loss,product")
        #expect(lines.count == 7 && lines[6].hasPrefix("6,12,2,succeeded,0,") && lines[6].hasSuffix(",24"), "\(lines)")
    }

    @Test func cancelingASweepStopsEveryRunAndNoHeldRunEverStarts() async throws {
        let work = try TemporaryDirectory()
        let researcher = try await Researcher.signUp("tove", on: stack)
        let bundle = try Bundles.folder("long", files: ["code.py": "import time\ntime.sleep(120)\n"], in: work)
        let created = try await create(researcher, bundle, fields: ["grid": "n=1..4", "throttle": "1"])
        let first = try #require(created.runs?.first?.job.id)
        let deadline = Date().addingTimeInterval(120)
        while try await researcher.job(first).decode(APIJob.self).status != "running", Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let cancel = try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + "/api/v1/sweeps/\(created.id)/cancel", headers: researcher.auth))
        #expect(cancel.status == 202)
        let done = try await waitUntilFinished(researcher, created.id, seconds: 60)
        #expect(done.runs?.map(\.job.status) == ["canceled", "canceled", "canceled", "canceled"])
        for run in done.runs?.dropFirst() ?? [] {
            let statuses = try await history(researcher, run.job.id).map(\.status)
            #expect(statuses == ["submitted", "canceled"], "run \(run.index) went \(statuses) after its sweep was canceled")
        }
    }

    @Test func failedRunsOfASweepTableRunAgainInTheirPlaces() async throws {
        let work = try TemporaryDirectory()
        let researcher = try await Researcher.signUp("ulla", on: stack)
        let code = """
        import json, os, sys
        params = json.load(open("params.json"))
        open("output/label.txt", "w").write(params["label"])
        sys.exit(3 if params["label"] == "bad" else 0)
        """
        let bundle = try Bundles.folder("table", files: ["code.py": code, "sweep.csv": "subject,label\nS01,good\nS02,bad\nS03,\"good, too\"\n"], in: work)
        let created = try await create(researcher, bundle, fields: [:])
        #expect(created.total == 3)
        let done = try await waitUntilFinished(researcher, created.id)
        #expect(done.runs?.map(\.job.status) == ["succeeded", "failed", "succeeded"])
        // Runs this short may start and end between two of the Consumer's polls: each still has its run time.
        #expect(done.runs?.allSatisfy { $0.runSeconds != nil } == true, "\(done.runs?.map(\.runSeconds) ?? [])")
        #expect(done.runs?.last?.parameters == [.init(name: "subject", value: "S03"), .init(name: "label", value: "good, too")])
        let failed = try #require(done.runs?[1].job.id)

        let rerun = try await stack.client.execute(HTTPRequest(method: "POST", url: stack.backendURL + "/api/v1/sweeps/\(created.id)/rerun-failed", headers: researcher.auth))
        #expect(rerun.status == 201, "\(String(decoding: rerun.body, as: UTF8.self))")
        let again = try await waitUntilFinished(researcher, created.id)
        let second = try #require(again.runs?[1])
        #expect(second.job.id != failed && second.index == 2 && second.job.status == "failed" && second.job.exitCode == 3)
        #expect(again.runs?.count == 3 && again.total == 3)
        #expect(try await researcher.result(second.job.id, into: work)["label.txt"] == "bad")
    }
}
