import FerryBundle
import FerryTestSupport
import FerryZip
import Foundation
import Testing

/// Every zip a researcher's tool writes is accepted: each fixture is written by the real tool where
/// Debian has it (Info-ZIP with and without folder entries, libarchive's bsdtar as GNOME Files uses
/// it, 7-Zip, Java's jar, Python's shutil and zipfile: stored, bzip2, zip64, streamed with data
/// descriptors), and built byte for byte after what the others write (PowerShell's Compress-Archive,
/// Windows Explorer, macOS ditto). Each is first read by Info-ZIP's `unzip -t` and Python's
/// `zipfile`, then must pass the bundle check and extract with its files intact, non-ASCII names
/// included. scripts/test installs the tools; a missing one fails the test and says so.
@Suite("Zips that researchers' tools write")
struct ToolZipTests {
    static let tools = ["infozip", "infozip-no-folders", "bsdtar", "7zip", "jar", "python-shutil", "python-stored", "python-bzip2", "python-zip64", "python-streamed", "powershell", "windows-explorer", "macos-ditto"]

    /// The project every tool zips: code.py, requirements.txt, a file with a non-ASCII name in a subfolder.
    static func project(in work: TemporaryDirectory) throws -> String {
        try work.write("src/my-project/code.py", "print('hello from the project')\n")
        try work.write("src/my-project/requirements.txt", "six==1.16.0\n")
        try work.write("src/my-project/data/Résumé café.csv", "x,y\n1,2\n")
        try FileManager.default.createDirectory(atPath: work.file("src/my-project/output"), withIntermediateDirectories: true)
        return work.file("src")
    }

    static func run(_ tool: String, _ arguments: [String], in folder: String) async throws {
        let path = ["/usr/bin/" + tool, "/bin/" + tool].first { FileManager.default.isExecutableFile(atPath: $0) }
        let executable = try #require(path, "\(tool) is missing: scripts/test installs zip, libarchive-tools, p7zip-full and openjdk-17-jdk-headless")
        let outcome = try await ChildProcess.run("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", folder, executable] + arguments, includingErrors: true)
        try #require(outcome.status == 0, "\(tool) failed: \(outcome.output)")
    }

    static func python(_ script: String, in folder: String) async throws {
        let outcome = try await ChildProcess.run("/usr/bin/python3", ["-c", script, folder], includingErrors: true)
        try #require(outcome.status == 0, "python failed: \(outcome.output)")
    }

    /// The fixture of `tool`, written into `work`.
    static func fixture(_ tool: String, in work: TemporaryDirectory) async throws -> String {
        let source = try project(in: work)
        let zip = work.file("\(tool).zip")
        let addAll = "import os, sys, zipfile\nos.chdir(sys.argv[1])\nfiles = [os.path.join(r, f) for r, _, fs in os.walk('my-project') for f in fs]\n"
        switch tool {
        case "infozip": try await run("zip", ["-qr", zip, "my-project"], in: source)
        case "infozip-no-folders": try await run("zip", ["-qrD", zip, "my-project"], in: source)
        case "bsdtar": try await run("bsdtar", ["-a", "-cf", zip, "my-project"], in: source)
        case "7zip": try await run("7z", ["a", "-tzip", "-bd", "-bso0", zip, "my-project"], in: source)
        case "jar": try await run("jar", ["cfM", zip, "my-project"], in: source)
        case "python-shutil": try await python("import shutil, sys\nshutil.make_archive(\(literal(zip.dropLast(4))), 'zip', sys.argv[1], 'my-project')", in: source)
        case "python-stored": try await python(addAll + "with zipfile.ZipFile(\(literal(zip)), 'w', zipfile.ZIP_STORED) as z:\n    [z.write(f) for f in files]", in: source)
        case "python-bzip2": try await python(addAll + "with zipfile.ZipFile(\(literal(zip)), 'w', zipfile.ZIP_BZIP2) as z:\n    [z.write(f) for f in files]", in: source)
        case "python-zip64":
            try await python(addAll + "with zipfile.ZipFile(\(literal(zip)), 'w', zipfile.ZIP_DEFLATED) as z:\n    for f in files:\n        with z.open(f, 'w', force_zip64=True) as out: out.write(open(f, 'rb').read())", in: source)
        case "python-streamed":
            // Written to a pipe, so every entry has a data descriptor after its data.
            try await python(addAll + "import io\nclass Pipe(io.RawIOBase):\n    def __init__(s): s.data = bytearray()\n    def writable(s): return True\n    def write(s, b): s.data += b; return len(b)\npipe = Pipe()\nwith zipfile.ZipFile(pipe, 'w', zipfile.ZIP_DEFLATED) as z:\n    [z.write(f) for f in files]\nopen(\(literal(zip)), 'wb').write(pipe.data)", in: source)
        case "powershell":
            // Windows PowerShell 5.1's Compress-Archive: backslashes between folders, no folder entries, no Unix modes.
            var raw = RawZipBuilder()
            raw.add(.init(name: "my-project\\code.py", data: Array("print('hello from the project')\n".utf8), mode: 0))
            raw.add(.init(name: "my-project\\requirements.txt", data: Array("six==1.16.0\n".utf8), mode: 0))
            raw.add(.init(name: "my-project\\data\\Résumé café.csv", data: Array("x,y\n1,2\n".utf8), mode: 0))
            try raw.write(to: zip)
        case "windows-explorer":
            // Explorer's "Send to → Compressed folder": folder entries with a trailing slash, DOS attributes only.
            var raw = RawZipBuilder()
            raw.add(.init(name: "my-project/", data: [], mode: 0))
            raw.add(.init(name: "my-project/code.py", data: Array("print('hello from the project')\n".utf8), mode: 0))
            raw.add(.init(name: "my-project/data/", data: [], mode: 0))
            raw.add(.init(name: "my-project/data/Résumé café.csv", data: Array("x,y\n1,2\n".utf8), mode: 0))
            raw.add(.init(name: "my-project/output/", data: [], mode: 0))
            raw.add(.init(name: "my-project/requirements.txt", data: Array("six==1.16.0\n".utf8), mode: 0))
            try raw.write(to: zip)
        case "macos-ditto":
            // `ditto -c -k --sequesterRsrc --keepParent`: NFD names, AppleDouble files under __MACOSX.
            var raw = RawZipBuilder()
            raw.directory("my-project/")
            raw.file("my-project/code.py", "print('hello from the project')\n")
            raw.file("my-project/requirements.txt", "six==1.16.0\n")
            raw.directory("my-project/data/")
            raw.file("my-project/data/" + "Résumé café.csv".decomposedStringWithCanonicalMapping, "x,y\n1,2\n")
            raw.directory("__MACOSX/")
            raw.directory("__MACOSX/my-project/")
            raw.file("__MACOSX/my-project/._code.py", "\u{0}\u{5}\u{16}\u{7}\u{0}\u{2}\u{0}\u{0}Mac OS X")
            raw.file("my-project/.DS_Store", "\u{0}\u{0}\u{0}\u{1}Bud1")
            try raw.write(to: zip)
        default:
            Issue.record("no fixture for \(tool)")
        }
        return zip
    }

    static func literal(_ text: some StringProtocol) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    @Test(arguments: tools)
    func theBundleCheckAcceptsWhatTheToolWrote(tool: String) async throws {
        let work = try TemporaryDirectory()
        let zip = try await Self.fixture(tool, in: work)
        // A valid zip by the tools everyone trusts.
        let tested = try await ChildProcess.run("/usr/bin/unzip", ["-tq", zip], includingErrors: true)
        try #require(tested.status == 0, "unzip -t refuses the \(tool) fixture: \(tested.output)")
        let read = try await ChildProcess.run("/usr/bin/python3", ["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None", zip], includingErrors: true)
        try #require(read.status == 0, "Python's zipfile refuses the \(tool) fixture: \(read.output)")

        let report = try BundleInspector.inspect(archive: zip, uploadName: "\(tool).zip")
        #expect(report.project == "my-project")
        #expect(report.requirements == ["six==1.16.0"])
        let into = work.file("extracted")
        try FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: true)
        try ZipReader(path: zip, maxEntries: 100).extractAll(into: into, including: { !BundleInspector.isLitter(name: $0.name) })
        #expect(try String(contentsOfFile: into + "/my-project/code.py", encoding: .utf8) == "print('hello from the project')\n")
        let data = try FileManager.default.contentsOfDirectory(atPath: into + "/my-project/data")
        #expect(data.map { $0.precomposedStringWithCanonicalMapping } == ["Résumé café.csv"], "\(data)")
        #expect(!FileManager.default.fileExists(atPath: into + "/__MACOSX"))
    }

    /// A damaged upload is named as such, and the message names no file of the server.
    @Test func aDamagedZipsMessageNamesNoServerPath() async throws {
        let work = try TemporaryDirectory()
        let zip = try await Self.fixture("infozip", in: work)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: zip))
        bytes.removeLast(30)  // the end record is cut off
        let damaged = work.file(".upload-\(UUID().uuidString).zip")
        try bytes.write(to: URL(fileURLWithPath: damaged))
        do {
            _ = try BundleInspector.inspect(archive: damaged, uploadName: "my-project.zip")
            Issue.record("a damaged zip was accepted")
        } catch let error as BundleError {
            #expect(["bundle.corrupt", "bundle.not_a_zip"].contains(error.code))
            #expect(!error.message.contains(work.path) && !error.message.contains(".upload-"), "\(error.message)")
        }
    }
}
