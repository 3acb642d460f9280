@testable import Backend
import FerryContracts
import FerryService
import FerryTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The sweep routes through the Backend's router, with a recording queue for the Producer: grids and
/// sweep.csv files that cannot run are refused with what to fix and leave nothing behind; the
/// throttle holds; another researcher's sweep is as absent as a missing one.
@Suite("Sweep API through the Backend's router")
struct SweepRouterTests {
    typealias Fixture = BackendRouterTests.Fixture

    static func create(
        _ client: any TestClientProtocol, token: String, query: String, files: [String: String] = ["demo/code.py": "print(1)"]
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        try await client.execute(
            uri: "/api/v1/sweeps?" + query, method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"],
            body: BackendRouterTests.bundle(files)
        ) { ($0.status, String(buffer: $0.body)) }
    }

    static func grid(_ text: String) -> String {
        "grid=" + (text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
    }

    @Test(arguments: [
        ("cutoff=1..30\nseed=1..30", "sweep.too_many_runs", "That makes 900 runs; this Ferry runs at most 500"),
        ("cutoff=8,,12", "sweep.empty_value", "cutoff has an empty value"),
        ("cutoff=", "sweep.empty_value", "cutoff has an empty value"),
        ("2cutoff=8", "sweep.invalid_name", "is not a parameter name"),
        ("cut-off=8", "sweep.invalid_name", "is not a parameter name"),
        ("cutoff 8", "sweep.invalid_grid", "has no '='"),
        ("seed=5..1", "sweep.invalid_range", "from the smaller number to the larger"),
        ("a=1\nA=2", "sweep.duplicate_name", "appears twice"),
        ("", "sweep.no_parameters", "give a grid"),
    ])
    func badGridsAreRefusedWithWhatToFixAndLeaveNothing(grid: String, code: String, message: String) async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("gina")
            let answer = try await Self.create(client, token: token, query: Self.grid(grid))
            #expect(answer.status == .unprocessableContent, "\(answer.body)")
            #expect(answer.body.contains(code) && answer.body.contains(message), "\(answer.body)")
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.file("bundles")).isEmpty, "a refused sweep left files")
            // The upload page's preview says the same before anything is sent.
            if !grid.isEmpty {
                let preview = try await client.execute(
                    uri: "/api/v1/sweeps/preview", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: ByteBuffer(data: try JSONEncoder().encode(["grid": grid]))
                ) { ($0.status, String(buffer: $0.body)) }
                #expect(preview.0 == .unprocessableContent && preview.1.contains(code), "\(preview.1)")
            }
        }
    }

    @Test(arguments: [
        ("cutoff,seed\n8,1\n10\n", "sweep.invalid_csv", "Line 3 of sweep.csv has 1 values; the header names 2"),
        ("cutoff,seed\n8,\n", "sweep.empty_value", "Line 2 of sweep.csv gives seed no value"),
        ("cut off,seed\n8,1\n", "sweep.invalid_name", "is not a parameter name"),
        ("cutoff,seed\n", "sweep.empty_csv", "has a header but no runs"),
        ("cutoff\n\"8\n", "sweep.invalid_csv", "never closed"),
    ])
    func badSweepTablesAreRefusedWithTheirLine(table: String, code: String, message: String) async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("gina")
            let answer = try await Self.create(client, token: token, query: "", files: ["demo/code.py": "print(1)", "demo/sweep.csv": table])
            #expect(answer.status == .unprocessableContent, "\(answer.body)")
            #expect(answer.body.contains(code) && answer.body.contains(message), "\(answer.body)")
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
        }
    }

    @Test func aGridAndASweepTableTogetherAreRefused() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("gina")
            let answer = try await Self.create(client, token: token, query: Self.grid("a=1"), files: ["demo/code.py": "", "demo/sweep.csv": "a\n1\n"])
            #expect(answer.status == .unprocessableContent && answer.body.contains("sweep.two_sources"), "\(answer.body)")
        }
    }

    @Test func aSweepQueuesItsThrottleAndTheRestFollowAsRunsEnd() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("hana")
            let answer = try await Self.create(client, token: token, query: Self.grid("cutoff=8,10,12\nseed=1..2") + "&throttle=2&timeLimit=60")
            #expect(answer.status == .created, "\(answer.body)")
            let sweep = try JSONDecoder.ferry().decode(SweepsController.Sweep.self, from: Data(answer.body.utf8))
            #expect(sweep.total == 6 && sweep.throttle == 2 && sweep.parameters == ["cutoff", "seed"])
            let runs = try #require(sweep.runs)
            #expect(runs.map(\.index) == [1, 2, 3, 4, 5, 6])
            #expect(runs.map { $0.parameters.map(\.value) } == [["8", "1"], ["8", "2"], ["10", "1"], ["10", "2"], ["12", "1"], ["12", "2"]])
            #expect(runs.allSatisfy { $0.job.timeLimit == 60 && $0.job.sweep?.id == sweep.id })
            #expect(runs.prefix(2).allSatisfy { $0.job.status == .queued } && runs.dropFirst(2).allSatisfy { $0.job.status == .submitted })
            #expect(runs[2].job.reason == "Waits for its turn: this sweep runs at most 2 at once.")
            #expect(fixture.queue.messages.withLock { $0.map { $0.sweep?.index } } == [1, 2])
            // Each message says the sweep's size and throttle (a Slurm unit's job array: --array=1-6%2).
            #expect(fixture.queue.messages.withLock { $0.allSatisfy { $0.sweep?.runs == 6 && $0.sweep?.throttle == 2 } })
            // Every run has its own bundle file (links to the one upload) and nothing else is left.
            let bundles = try FileManager.default.contentsOfDirectory(atPath: fixture.directory.file("bundles")).sorted()
            #expect(bundles == runs.map { "\($0.job.id).zip" }.sorted())

            // Run 1 ends: run 3 goes; a run canceled while held never goes, and lets the next go.
            try await fixture.store.advance(runs[0].job.id, to: .succeeded, at: Date())
            await SweepTurns(store: fixture.store, queue: fixture.queue, logger: .init(label: "test")).release(sweep: sweep.id)
            #expect(fixture.queue.messages.withLock { $0.map { $0.sweep?.index } } == [1, 2, 3])
            try await client.execute(uri: "/api/v1/jobs/\(runs[3].job.id)/cancel", method: .post, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .accepted)
            }
            try await client.execute(uri: "/api/v1/jobs/\(runs[1].job.id)/cancel", method: .post, headers: [.authorization: "Bearer \(token)"]) { _ in }
            #expect(fixture.queue.messages.withLock { $0.map { $0.sweep?.index } } == [1, 2, 3, 5], "run 4 was canceled; run 2's place went to run 5")

            // The whole sweep: everything that has not ended is canceled.
            try await client.execute(uri: "/api/v1/sweeps/\(sweep.id)/cancel", method: .post, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .accepted)
                let after = try JSONDecoder.ferry().decode(SweepsController.Sweep.self, from: Data(String(buffer: response.body).utf8))
                #expect(after.runs?.map(\.job.status) == [.succeeded, .canceled, .canceled, .canceled, .canceled, .canceled])
                #expect(after.finished)
            }
            #expect(fixture.queue.messages.withLock { $0.count } == 4, "run 6 never went")
            // Each canceled place is marked for the units (a held run's array task is canceled by them); the ended run's is not.
            let data = fixture.directory.path
            #expect((2...6).allSatisfy { CancelMarker.isCanceled(sweepID: sweep.id, index: $0, dataDirectory: data) })
            #expect(!CancelMarker.isCanceled(sweepID: sweep.id, index: 1, dataDirectory: data))
            #expect(runs.dropFirst().allSatisfy { CancelMarker.isCanceled(jobID: $0.job.id, dataDirectory: data) })
            try await client.execute(uri: "/api/v1/sweeps/\(sweep.id)/cancel", method: .post, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .conflict)
            }
        }
    }

    @Test func anotherResearchersSweepIsAsAbsentAsAMissingOne() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let owner = try await client.account("ines"), other = try await client.account("jon")
            let answer = try await Self.create(client, token: owner, query: Self.grid("n=1..2"))
            let sweep = try JSONDecoder.ferry().decode(SweepsController.Sweep.self, from: Data(answer.body.utf8))
            for (method, path) in [
                (HTTPRequest.Method.get, ""), (.post, "/cancel"), (.post, "/rerun-failed"), (.get, "/results"), (.get, "/table"),
            ] {
                try await client.execute(uri: "/api/v1/sweeps/\(sweep.id)\(path)", method: method, headers: [.authorization: "Bearer \(other)"]) { response in
                    #expect(response.status == .notFound, "\(path)")
                    #expect(String(buffer: response.body).contains("sweep.not_found"))
                }
            }
            try await client.execute(uri: "/api/v1/sweeps", method: .get, headers: [.authorization: "Bearer \(other)"]) { response in
                let list = try JSONDecoder.ferry().decode(SweepsController.SweepList.self, from: response.body)
                #expect(list.sweeps.isEmpty)
            }
            try await client.execute(uri: "/api/v1/sweeps", method: .get, headers: [.authorization: "Bearer \(owner)"]) { response in
                let list = try JSONDecoder.ferry().decode(SweepsController.SweepList.self, from: response.body)
                #expect(list.sweeps.map(\.id) == [sweep.id] && list.sweeps.first?.counts == ["queued": 2])
            }
            try await client.execute(uri: "/api/v1/sweeps/\(sweep.id)/rerun-failed", method: .post, headers: [.authorization: "Bearer \(owner)"]) { response in
                #expect(response.status == .conflict && String(buffer: response.body).contains("sweep.nothing_to_rerun"))
            }
            // "Run again" on one run: a new run in the same place, with the same parameters.
            let first = try #require(sweep.runs?.first)
            try await client.execute(uri: "/api/v1/jobs/\(first.job.id)/rerun", method: .post, headers: [.authorization: "Bearer \(owner)"]) { response in
                #expect(response.status == .created)
                let job = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(job.id != first.job.id && job.sweep?.index == 1 && job.sweep?.parameters == first.parameters && job.status == .submitted)
            }
            // A run's job page shows its parameters to its owner only.
            let run = try #require(sweep.runs?.last)
            try await client.execute(uri: "/api/v1/jobs/\(run.job.id)", method: .get, headers: [.authorization: "Bearer \(owner)"]) { response in
                let job = try JSONDecoder.ferry().decode(Job.self, from: response.body)
                #expect(job.sweep == JobSweep(id: sweep.id, index: 2, parameters: [.init(name: "n", value: "2")]))
            }
        }
    }

    static let declarations = """
        [{"name": "cutoff", "type": "int", "min": 1, "max": 20, "default": 10, "help": "Low-pass cut-off in Hz"},
         {"name": "method", "choices": ["fast", "exact"], "default": "fast"},
         {"name": "rate", "type": "float"}]
        """

    @Test(arguments: [
        ("cutoff=8,30\nrate=0.5", "sweep.invalid_value", "Run 2: cutoff=30 is above its maximum, 20."),
        ("cutoff=x\nrate=1", "sweep.invalid_value", "cutoff=x is not a whole number."),
        ("speed=1\nrate=1", "sweep.invalid_declarations", "it declares no parameter speed; the project's parameters are cutoff, method, rate"),
        ("method=slow\nrate=1", "sweep.invalid_value", "method=slow is not one of its choices (fast, exact)."),
        ("cutoff=8", "sweep.invalid_declarations", "rate has no default, so it must be given a value"),
        ("rate=abc", "sweep.invalid_value", "rate=abc is not a number."),
    ])
    func valuesOutsideTheDeclaredParametersAreRefused(grid: String, code: String, message: String) async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("lena")
            let answer = try await Self.create(client, token: token, query: Self.grid(grid), files: ["demo/code.py": "", "demo/parameters.json": Self.declarations])
            #expect(answer.status == .unprocessableContent && answer.body.contains(code) && answer.body.contains(message), "\(answer.body)")
            #expect(fixture.queue.messages.withLock { $0.isEmpty })
        }
    }

    @Test func declaredDefaultsFillWhatASweepLeavesOut() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("mia")
            let answer = try await Self.create(client, token: token, query: Self.grid("rate=0.5,1.5\ncutoff=4"), files: ["demo/code.py": "", "demo/parameters.json": Self.declarations])
            #expect(answer.status == .created, "\(answer.body)")
            let sweep = try JSONDecoder.ferry().decode(SweepsController.Sweep.self, from: Data(answer.body.utf8))
            #expect(sweep.parameters == ["cutoff", "method", "rate"], "the declared order")
            #expect(sweep.runs?.map { $0.parameters.map(\.value) } == [["4", "fast", "0.5"], ["4", "fast", "1.5"]])
            // Nothing but defaults: one run, when every parameter has one.
            let single = try await Self.create(
                client, token: token, query: "", files: ["demo/code.py": "", "demo/parameters.json": #"[{"name": "cutoff", "type": "int", "default": 10}]"#]
            )
            #expect(single.status == .created && single.body.contains(#""total":1"#), "\(single.body)")
            let broken = try await Self.create(client, token: token, query: Self.grid("a=1"), files: ["demo/code.py": "", "demo/parameters.json": "{not json"])
            #expect(broken.status == .unprocessableContent && broken.body.contains("parameters.json: it must be a JSON list"), "\(broken.body)")
            // A plain upload of such a project runs once with the defaults, given to it like any run's.
            let job = try await client.execute(
                uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"],
                body: BackendRouterTests.bundle(["demo/code.py": "", "demo/parameters.json": #"[{"name": "cutoff", "type": "int", "default": 10}]"#])
            ) { response -> Job in
                #expect(response.status == .created)
                return try JSONDecoder.ferry().decode(Job.self, from: response.body)
            }
            #expect(job.sweep?.parameters == [.init(name: "cutoff", value: "10")] && job.sweep?.index == 1)
            try await client.execute(
                uri: "/api/v1/jobs", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: "application/zip"],
                body: BackendRouterTests.bundle(["demo/code.py": "", "demo/parameters.json": Self.declarations])
            ) { response in
                #expect(response.status == .unprocessableContent && String(buffer: response.body).contains("rate has no default"))
            }
            let badDefault = try await Self.create(client, token: token, query: "", files: ["demo/code.py": "", "demo/parameters.json": #"[{"name": "n", "type": "int", "default": "many"}]"#])
            #expect(badDefault.body.contains("the default of n is not a whole number"), "\(badDefault.body)")
        }
    }

    /// The combined zip's directory is held until its end: results with too many files in all are
    /// refused up front (from their end records), with where to get them instead.
    @Test func aCombinedZipOfTooManyFilesIsRefusedBeforeItStarts() async throws {
        try await BackendRouterTests.withFixture { fixture, client in
            let token = try await client.account("nina")
            let answer = try await Self.create(client, token: token, query: Self.grid("n=1..2"))
            let sweep = try JSONDecoder.ferry().decode(SweepsController.Sweep.self, from: Data(answer.body.utf8))
            let run = try #require(sweep.runs?.first)
            try FileManager.default.createDirectory(atPath: fixture.directory.file("results"), withIntermediateDirectories: true)
            try DeclaredEntriesTests.directoryOnly(entries: 400_000, to: fixture.directory.file("results/\(run.job.id).zip"))
            try await fixture.store.advance(run.job.id, to: .succeeded, at: Date(), resultBytes: 1)
            try await client.execute(uri: "/api/v1/sweeps/\(sweep.id)/results", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .contentTooLarge)
                #expect(String(buffer: response.body).contains("400000 files, more than 300000"), "\(String(buffer: response.body))")
            }
        }
    }

    @Test func aSweepCountsAsItsRunsAgainstTheResearchersLimit() async throws {
        try await BackendRouterTests.withFixture(userLimits: UserLimits(activeJobs: 5)) { fixture, client in
            let token = try await client.account("kim")
            let answer = try await Self.create(client, token: token, query: Self.grid("n=1..6"))
            #expect(answer.status == .tooManyRequests && answer.body.contains("This sweep has 6 runs"), "\(answer.body)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.file("bundles")).isEmpty)
            #expect(try await Self.create(client, token: token, query: Self.grid("n=1..5")).status == .created)
        }
    }
}

@Suite("Sweep parameter sets")
struct SweepPlanTests {
    @Test func aGridIsTheProductInItsOrder() throws {
        let plan = try SweepPlan.grid("  cutoff = 8, 10 ; seed=1..3\n\nmode=fast", maxRuns: 100)
        #expect(plan.names == ["cutoff", "seed", "mode"])
        #expect(plan.runs.count == 6)
        #expect(plan.runs.first == ["8", "1", "fast"] && plan.runs.last == ["10", "3", "fast"])
        #expect(plan.runs[1] == ["8", "2", "fast"], "the last parameter varies fastest, as nested loops")
        // A browser's form sends a textarea's lines with CRLF.
        #expect(try SweepPlan.grid("cutoff=8,10,12\r\nseed=1..2\r\n", maxRuns: 100).runs.count == 6)
    }

    @Test func aSweepTableKeepsQuotedCommasAndCRLF() throws {
        let plan = try SweepPlan.csv("\u{FEFF}subject,label\r\nS01,\"a, b\"\r\nS02,\"say \"\"hi\"\"\"\r\n", maxRuns: 10)
        #expect(plan.names == ["subject", "label"])
        #expect(plan.runs == [["S01", "a, b"], ["S02", "say \"hi\""]])
    }

    @Test func tooManyRunsIsRefusedBeforeAnythingIsExpanded() {
        #expect(throws: APIError.self) { try SweepPlan.grid("a=1..9999\nb=1..9999\nc=1..9999\nd=1..9999\ne=1..9999", maxRuns: 500) }
    }

    @Test func folderNamesAreThePlaceAndTheParametersInPlainCharacters() {
        let job = Job(
            id: "x", project: "p", owner: "o", status: .succeeded, submittedAt: Date(), timeLimit: 1, memoryLimit: 1,
            sweep: JobSweep(id: "s", index: 7, parameters: [.init(name: "file", value: "../etc/passwd"), .init(name: "seed", value: "2")])
        )
        #expect(SweepsController.folderName(job, of: 120) == "007-file=.._etc_passwd_seed=2")
        #expect(SweepsController.csvField("=HYPERLINK(1)") == "'=HYPERLINK(1)" && SweepsController.csvField("-3.5") == "-3.5")
        #expect(SweepsController.csvField("a,b") == "\"a,b\"")
    }
}
