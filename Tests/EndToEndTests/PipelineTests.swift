import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// Upload → Producer → RabbitMQ → Consumer → ProcessingUnit → result, through the public API only.
@Suite("Pipeline end to end", .runningStack)
struct PipelineTests {
    var stack: Stack { Stack.current! }

    @Test func folderBundleRunsAndItsOutputComesBack() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.folder("analysis", files: [
            "code.py": "import json, os\nrows = [int(x) for x in open('data/input.csv').read().split()]\nprint('sum', sum(rows))\njson.dump({'sum': sum(rows), 'cwd': os.path.basename(os.getcwd())}, open('output/result.json', 'w'))\n",
            "data/input.csv": "1\n2\n3\n4\n",
            "output/.keep": "",
        ], in: work)
        let alice = try await Researcher.signUp("alice", on: stack)
        let job = try await alice.submit(zip, fileName: "analysis.zip")
        #expect(job.project == "analysis")
        #expect(["submitted", "queued", "preparing", "running"].contains(job.status))
        let done = try await alice.waitUntilFinished(job.id)
        #expect(done.status == "succeeded", "\(done.reason ?? "")")
        #expect(done.exitCode == 0)
        let files = try await alice.result(job.id, into: work)
        #expect(files["result.json"]?.contains(#""sum": 10"#) == true)
        #expect(files["result.json"]?.contains(#""cwd": "analysis""#) == true)
        #expect(try await alice.log(job.id, stream: "stdout") == "sum 10\n")
    }

    @Test func contentsZipIsNamedAfterTheUploadAndRunsFromARawBody() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.contents(files: ["code.py": "open('output/hello.txt', 'w').write('hello')\n"], in: work)
        let bob = try await Researcher.signUp("bob", on: stack)
        let job = try await bob.submit(zip, fileName: "my study.zip", multipart: false)
        #expect(job.project == "my study")
        #expect(try await bob.waitUntilFinished(job.id).status == "succeeded")
        #expect(try await bob.result(job.id, into: work) == ["hello.txt": "hello"])
    }

    @Test func macOSFinderZipIgnoresTheLitter() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.finder("finderproj", code: "import os\nopen('output/listing.txt', 'w').write(' '.join(sorted(os.listdir('.'))))\n", in: work)
        let carol = try await Researcher.signUp("carol", on: stack)
        let job = try await carol.submit(zip, fileName: "finderproj.zip")
        #expect(job.project == "finderproj")
        let done = try await carol.waitUntilFinished(job.id)
        #expect(done.status == "succeeded", "\(done.reason ?? "")")
        // Neither __MACOSX nor .DS_Store reached the project folder.
        #expect(try await carol.result(job.id, into: work)["listing.txt"] == "code.py output")
    }

    @Test func pinnedRequirementsFromPyPIInUTF16AreInstalledAndCached() async throws {
        let work = try TemporaryDirectory()
        let files = [
            "code.py": "import six\nopen('output/version.txt', 'w').write(six.__version__)\n",
            "requirements.txt": Bundles.powershellText(["six==1.16.0"]),
        ]
        let dana = try await Researcher.signUp("dana", on: stack)
        let first = try await dana.submit(try Bundles.folder("withreqs", files: files, in: work), fileName: "withreqs.zip")
        let done = try await dana.waitUntilFinished(first.id)
        let stderr = try await dana.log(first.id, stream: "stderr")
        #expect(done.status == "succeeded", "\(done.reason ?? "") \(stderr)")
        #expect(try await dana.result(first.id, into: work)["version.txt"] == "1.16.0")

        // The same requirements again: the environment is reused, not installed a second time.
        let second = try await dana.submit(try Bundles.folder("withreqs", files: files, in: work), fileName: "withreqs.zip")
        #expect(try await dana.waitUntilFinished(second.id).status == "succeeded")
        let manifest = try String(contentsOfFile: stack.data.file("jobs/\(second.id)/manifest.json"), encoding: .utf8)
        #expect(manifest.contains(#""cacheHit" : true"#))
        #expect(manifest.contains("six==1.16.0"))
    }

    /// The installer's reason is on the job and its whole log one request away (before: "see
    /// install.log", which no page or route served).
    @Test func aRequirementThatCannotInstallSaysWhyOnTheJob() async throws {
        let work = try TemporaryDirectory()
        let erin = try await Researcher.signUp("erin", on: stack)
        let files = ["code.py": "import six\n", "requirements.txt": "six==9.9.9\n"]
        let job = try await erin.waitUntilFinished(try await erin.submit(try Bundles.folder("badreq", files: files, in: work), fileName: "badreq.zip").id)
        #expect(job.status == "failed")
        #expect(job.reason?.contains("requirements.txt could not be installed") == true && job.reason?.contains("six==9.9.9") == true, "\(job.reason ?? "")")
        #expect(job.reason?.contains(stack.data.path) != true, "the reason names a server path")
        let install = try await erin.log(job.id, stream: "install")
        #expect(install.contains("six==9.9.9"), "the install log is not served: \(install)")
    }

    @Test func bundleWithoutOutputFolderGetsOne() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.folder("nooutput", files: ["code.py": "open('output/made.txt', 'w').write('made')\n"], in: work)
        let erin = try await Researcher.signUp("erin", on: stack)
        let job = try await erin.submit(zip, fileName: "nooutput.zip")
        #expect(try await erin.waitUntilFinished(job.id).status == "succeeded")
        #expect(try await erin.result(job.id, into: work) == ["made.txt": "made"])
    }

    @Test func nonZeroExitEndsFailedWithItsCodeStderrAndPartialOutput() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.folder("crashes", files: [
            "code.py": "import sys\nopen('output/partial.txt', 'w').write('half done')\nprint('step 1 ok')\nprint('something went wrong', file=sys.stderr)\nsys.exit(3)\n",
        ], in: work)
        let frank = try await Researcher.signUp("frank", on: stack)
        let job = try await frank.submit(zip, fileName: "crashes.zip")
        let done = try await frank.waitUntilFinished(job.id)
        #expect(done.status == "failed")
        #expect(done.exitCode == 3)
        #expect(try await frank.log(job.id, stream: "stderr").contains("something went wrong"))
        #expect(try await frank.log(job.id, stream: "stdout") == "step 1 ok\n")
        #expect(try await frank.result(job.id, into: work) == ["partial.txt": "half done"])
    }

    @Test func oneResearcherCannotSeeAnothersJob() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.folder("private", files: ["code.py": "open('output/secret.txt', 'w').write('mine')\n"], in: work)
        let owner = try await Researcher.signUp("owner", on: stack)
        let other = try await Researcher.signUp("other", on: stack)
        let job = try await owner.submit(zip, fileName: "private.zip")
        _ = try await owner.waitUntilFinished(job.id)
        #expect(try await other.job(job.id).status == 404)
        for path in ["log?stream=stdout", "result"] {
            let response = try await stack.client.execute(.init(url: stack.backendURL + "/api/v1/jobs/\(job.id)/\(path)", headers: other.auth))
            #expect(response.status == 404, "\(path)")
        }
        #expect(try await other.jobs().jobs.isEmpty)
        #expect(try await owner.jobs().jobs.map(\.id) == [job.id])
    }

    @Test func invalidBundleIsRefusedAtUploadWithAClearMessage() async throws {
        let work = try TemporaryDirectory()
        let zip = try Bundles.folder("broken", files: ["main.py": "print(1)\n"], in: work)
        let gina = try await Researcher.signUp("gina", on: stack)
        let response = try await gina.upload(zip, fileName: "broken.zip")
        #expect(response.status == 422)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.contains("bundle.missing_code_py"))
        #expect(text.contains("code.py"))
        #expect(try await gina.jobs().jobs.isEmpty)
    }

    @Test func everyServiceIsReadyAndReportsJobMetricsToPrometheus() async throws {
        let work = try TemporaryDirectory()
        let alice = try await Researcher.signUp("metrics", on: stack)
        let job = try await alice.submit(try Bundles.folder("measured", files: ["code.py": "print('hi')\n"], in: work), fileName: "measured.zip")
        #expect(try await alice.waitUntilFinished(job.id).status == "succeeded")
        for url in [stack.backendURL, stack.unitURL, stack.consumerURL, stack.frontendURL] {
            let health = try await stack.client.execute(HTTPRequest(url: url + "/health"))
            #expect(health.status == 200, "\(url): \(String(decoding: health.body, as: UTF8.self))")
        }
        func metrics(_ url: String) async throws -> String {
            String(decoding: try await stack.client.execute(HTTPRequest(url: url + "/metrics")).body, as: UTF8.self)
        }
        // The final event may reach the Backend a moment after the job's status was read.
        var backend = try await metrics(stack.backendURL)
        for _ in 0..<20 where !backend.contains("ferry_job_run_seconds_bucket") {
            try await Task.sleep(for: .milliseconds(250))
            backend = try await metrics(stack.backendURL)
        }
        for name in ["ferry_jobs{status=\"succeeded\"}", "ferry_queue_depth", "ferry_job_wait_seconds_bucket", "ferry_job_run_seconds_bucket",
                     "ferry_upload_bytes_total", "ferry_uploads_total{result=\"accepted\"}"] {
            #expect(backend.contains(name), "the Backend's /metrics lacks \(name)")
        }
        #expect(try await metrics(stack.unitURL).contains("ferry_environment_cache_total"))
    }
}
