import Foundation

/// The projects the benchmark runs, and the direct runs it compares Ferry with.
enum Project {
    struct Made { var folder: String; var zip: String }

    static func trivial(in work: String) throws -> Made {
        let folder = work + "/trivial"
        try write("with open('output/result.txt', 'w') as f:\n    f.write('42')\n", to: folder + "/code.py")
        try FileManager.default.createDirectory(atPath: folder + "/output", withIntermediateDirectories: true)
        return Made(folder: folder, zip: try zip(folder: work, name: "trivial"))
    }

    /// A job that computes for `seconds` of CPU time, like the shortest real analyses.
    static func computing(in work: String, seconds: Double) throws -> Made {
        let folder = work + "/compute"
        try write(
            """
            import time
            start = time.process_time()
            n = 0
            while time.process_time() - start < \(seconds):
                n += 1
            with open('output/result.txt', 'w') as f:
                f.write(str(n))

            """, to: folder + "/code.py")
        try FileManager.default.createDirectory(atPath: folder + "/output", withIntermediateDirectories: true)
        return Made(folder: folder, zip: try zip(folder: work, name: "compute"))
    }

    static func withRequirements(in work: String, tag: String) throws -> String {
        let folder = work + "/reqs-\(tag)"
        try write("import six\nopen('output/six.txt', 'w').write(six.__version__)\n", to: folder + "/code.py")
        // scripts/bench starts from an empty data folder, so the first run builds the environment.
        try write("six==1.16.0\n", to: folder + "/requirements.txt")
        return try zip(folder: work, name: "reqs-\(tag)")
    }

    /// A bundle of `bytes` incompressible bytes, stored (zip -0) as the largest realistic upload.
    static func large(in work: String, bytes: Int) throws -> String {
        let folder = work + "/large"
        try write("print('large')\n", to: folder + "/code.py")
        try run("/usr/bin/head", ["-c", "\(bytes)", "/dev/urandom"], stdout: folder + "/data.bin")
        let zip = work + "/large.zip"
        try run("/usr/bin/env", ["--chdir=\(work)", "zip", "-q", "-0", "-r", zip, "large"])
        return zip
    }

    static func zip(folder work: String, name: String) throws -> String {
        let zip = work + "/\(name).zip"
        try run("/usr/bin/env", ["--chdir=\(work)", "zip", "-q", "-r", zip, name])
        return zip
    }

    /// One `python3 code.py` in the project folder, as a researcher would run it, started with
    /// posix_spawn as Ferry's units start jobs (Foundation's Process costs far more per start on Linux).
    static func timeDirect(python: String, folder: String) throws -> Double {
        let start = Date()
        try spawn(python, ["code.py"], directory: folder)
        return Date().timeIntervalSince(start)
    }

    static func spawn(_ executable: String, _ arguments: [String], directory: String) throws {
        let argv = (["/usr/bin/env", "--chdir=\(directory)", executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, environ) == 0 else { throw BenchError("cannot start \(executable)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw BenchError("\(executable) \(arguments.joined(separator: " ")) failed (status \(status))") }
    }

    static func runBareLoop(python: String, folder: String, count: Int, parallel: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<parallel {
                group.addTask {
                    for _ in stride(from: worker, to: count, by: parallel) { try spawn(python, ["code.py"], directory: folder) }
                }
            }
            try await group.waitForAll()
        }
    }

    /// A venv without packages (and without pip), like the environment of a bundle with no requirements.
    static func emptyEnvironment(python: String, in work: String) throws -> String {
        try run(python, ["-m", "venv", "--without-pip", work + "/venv"])
        return work + "/venv/bin/python"
    }

    /// VmHWM of a process: its peak resident memory so far, in bytes.
    static func peakMemory(of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        return (line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0) * 1024
    }

    /// The real interpreter behind `name` (sys.executable), not a wrapper such as a pyenv shim, so that
    /// the direct runs start the same interpreter as Ferry's units do.
    static func resolve(_ name: String) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let found = name.contains("/") ? name : path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? name
        let output = NSTemporaryDirectory() + "ferry-bench-python-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard (try? run(found, ["-c", "import sys; print(sys.executable)"], stdout: output)) != nil,
              let real = try? String(contentsOfFile: output, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !real.isEmpty else { return found }
        return real
    }

    private static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], directory: String? = nil, stdout: String? = nil) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let stdout {
            FileManager.default.createFile(atPath: stdout, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)") }
        return process.terminationStatus
    }
}
