import FerryHTTPClient
import FerryTestSupport
import Foundation
import Testing

/// Installing requirements runs a package index's files: a wheel's `.pth` file runs at every start
/// of Python. Ferry installs every environment in a sandbox of its own and never starts an
/// environment's interpreter outside one, so a canary package from a local index (served on
/// 127.0.0.1 as `python.index`) never reaches the unit's file system, with uv and with pip.
@Suite("Installing is contained", .serialized)
struct InstallSandboxTests {
    @Test(arguments: ["uv", "pip"])
    func aPackagesStartUpHookNeverRunsOutsideTheSandbox(installer: String) async throws {
        let index = try await CanaryIndex.start()
        defer { index.stop() }
        let stack = try await Stack.start(unitArguments: ["--python-index", index.url] + (installer == "pip" ? ["--python-uv", "off"] : []))
        do {
            let work = try TemporaryDirectory()
            let alice = try await Researcher.signUp("canary-\(installer)", on: stack)
            let code = """
                import json, os, ferry_canary, site
                packages = site.getsitepackages()[0]
                try:
                    open(os.path.join(packages, "planted.py"), "w").write("x")
                    writable = True
                except OSError:
                    writable = False
                json.dump({"canary": ferry_canary.VALUE, "environmentWritable": writable}, open("output/report.json", "w"))
                """
            let zip = try Bundles.folder("canary", files: ["code.py": code, "requirements.txt": "ferry-canary==1.0\n"], in: work)
            let job = try await alice.waitUntilFinished(try await alice.submit(zip, fileName: "canary.zip").id, seconds: 300)
            let install = (try? String(contentsOfFile: stack.data.file("jobs/\(job.id)/install.log"), encoding: .utf8)) ?? ""
            #expect(job.status == "succeeded", "\(job.reason ?? "") \(install)")
            let report = try #require(try await alice.result(job.id, into: work)["report.json"])
            #expect(report.contains(#""canary": "installed""#), "\(report)")
            #expect(report.contains(#""environmentWritable": false"#), "a job could write into its environment: \(report)")
            // The hook tried to write into the canary folder, which exists only outside the sandboxes.
            let hits = (try? FileManager.default.contentsOfDirectory(atPath: index.canaryFolder)) ?? []
            #expect(hits.isEmpty, "the package's .pth ran outside the sandbox: \(hits)")
            // The manifest still lists the package, read from its metadata.
            let manifest = try String(contentsOfFile: stack.data.file("jobs/\(job.id)/manifest.json"), encoding: .utf8)
            #expect(manifest.contains("ferry-canary==1.0"), "\(manifest)")
            // The environment belongs to root and nobody else may change it.
            let environments = try FileManager.default.contentsOfDirectory(atPath: stack.sandbox.file("envs")).filter { $0.count == 32 }
            for environment in environments {
                let attributes = try FileManager.default.attributesOfItem(atPath: stack.sandbox.file("envs/\(environment)"))
                #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue == 0)
            }
        } catch {
            try await stack.stop()
            throw error
        }
        try await stack.stop()
    }
}

/// A package index on 127.0.0.1 with one wheel, `ferry-canary 1.0`, whose `.pth` file writes into a
/// world-writable folder of the host when it runs; inside a sandbox that folder does not exist.
struct CanaryIndex {
    let url: String
    let canaryFolder: String
    let root: TemporaryDirectory
    let server: Process

    static func start() async throws -> CanaryIndex {
        let root = try TemporaryDirectory("ferry-index")
        let canary = root.file("canary-hits")
        try FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        chmod(canary, 0o777)
        chmod(root.path, 0o755)
        let port = try unusedPort()
        // The wheel is written by Python's own zipfile, as a packaging tool writes it.
        let builder = """
            import base64, hashlib, os, sys, zipfile
            root, canary = sys.argv[1], sys.argv[2]
            hook = f"import os; os.path.isdir({canary!r}) and open(os.path.join({canary!r}, 'hit-%d' % os.getpid()), 'w').write(str(os.getuid()))\\n"
            files = {
                "ferry_canary/__init__.py": "VALUE = 'installed'\\n",
                "ferry_canary.pth": hook,
                "ferry_canary-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: ferry-canary\\nVersion: 1.0\\n\\n",
                "ferry_canary-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: ferry-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
            }
            def digest(text):
                return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record = "".join(f"{name},{digest(text)},{len(text.encode())}\\n" for name, text in files.items())
            record += "ferry_canary-1.0.dist-info/RECORD,,\\n"
            os.makedirs(os.path.join(root, "files"))
            wheel = os.path.join(root, "files", "ferry_canary-1.0-py3-none-any.whl")
            with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, text in files.items():
                    archive.writestr(name, text)
                archive.writestr("ferry_canary-1.0.dist-info/RECORD", record)
            sha = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
            os.makedirs(os.path.join(root, "simple", "ferry-canary"))
            open(os.path.join(root, "simple", "index.html"), "w").write('<a href="ferry-canary/">ferry-canary</a>')
            open(os.path.join(root, "simple", "ferry-canary", "index.html"), "w").write(
                f'<a href="../../files/ferry_canary-1.0-py3-none-any.whl#sha256={sha}">ferry_canary-1.0-py3-none-any.whl</a>')
            """
        try builder.write(toFile: root.file("build.py"), atomically: true, encoding: .utf8)
        let built = try await ChildProcess.run("/usr/bin/python3", [root.file("build.py"), root.file("index"), canary], includingErrors: true)
        try #require(built.status == 0, "the canary wheel could not be built: \(built.output)")
        // The control: unpacked into a plain venv on the host and started there, the hook does write.
        let control = """
            import glob, subprocess, sys, sysconfig, venv, zipfile
            root, canary = sys.argv[1], sys.argv[2]
            venv.create(root + "/control", with_pip=False)
            site = subprocess.check_output([root + "/control/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
            zipfile.ZipFile(glob.glob(root + "/index/files/*.whl")[0]).extractall(site)
            subprocess.check_call([root + "/control/bin/python", "-c", "pass"])
            """
        try control.write(toFile: root.file("control.py"), atomically: true, encoding: .utf8)
        let controlled = try await ChildProcess.run("/usr/bin/python3", [root.file("control.py"), root.path, canary], includingErrors: true)
        try #require(controlled.status == 0, "the control venv failed: \(controlled.output)")
        let fired = try FileManager.default.contentsOfDirectory(atPath: canary)
        try #require(!fired.isEmpty, "the canary's hook did not fire even outside a sandbox: the test would prove nothing")
        for hit in fired { try FileManager.default.removeItem(atPath: canary + "/" + hit) }

        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", root.file("index"), "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        let index = CanaryIndex(url: "http://127.0.0.1:\(port)/simple", canaryFolder: canary, root: root, server: server)
        let client = HTTPClient()
        for _ in 0..<50 {
            if let page = try? await client.execute(.init(url: index.url + "/ferry-canary/", timeout: .seconds(2))), page.status == 200 {
                try await client.shutdown()
                return index
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await client.shutdown()
        index.stop()
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "the local package index did not answer"])
    }

    func stop() {
        kill(server.processIdentifier, SIGKILL)
    }
}
