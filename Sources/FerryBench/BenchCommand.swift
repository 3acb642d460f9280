import ArgumentParser
import FerryHTTPClient
import Foundation

/// `ferry-bench`: measures a running Ferry beside plain `python3 code.py` and prints the figures.
/// scripts/bench starts a fresh stack for it; see the README's "Performance" section.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ferry-bench", abstract: "Measure Ferry's overhead, throughput, environment cache and upload memory.")

    @Option(help: "Ferry's URL (the Frontend).") var url = "http://127.0.0.1:18080"
    @Option(help: "PID of the Backend, whose peak memory is read from /proc during the 1 GiB upload.") var backendPID: Int32?
    @Option(help: "Sequential trivial jobs for the latency figures.") var jobs = 40
    @Option(help: "Jobs queued at once for the throughput figure.") var burst = 200
    @Option(help: "Jobs that compute, for the second throughput figure.") var computeJobs = 40
    @Option(help: "CPU seconds each of those jobs computes.") var computeSeconds = 0.5
    @Option(help: "Processes the bare loop runs at once (the machine's cores).") var parallel = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Python interpreter for the direct runs.") var python = "python3"
    @Flag(help: "Skip the 1 GiB upload.") var skipLargeUpload = false

    func run() async throws {
        let work = NSTemporaryDirectory() + "ferry-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 64, defaultTimeout: .seconds(3600)))
        defer { Task { try? await client.shutdown() } }
        let ferry = try await BenchClient.signUp(url: url, client: client)
        let trivial = try Project.trivial(in: work)
        // The same interpreter in an empty venv, as Ferry's units run a bundle without requirements.
        let python = try Project.emptyEnvironment(python: Project.resolve(python), in: work)

        print("Ferry benchmark — \(ProcessInfo.processInfo.activeProcessorCount) cores, \(jobs) sequential jobs, burst of \(burst), \(python)")
        print("")
        _ = try await ferry.runToResult(trivial.zip, name: "warmup.zip")  // builds the empty environment once

        // 1. Latency: one trivial job at a time, upload until the result can be downloaded.
        var direct: [Double] = []
        for _ in 0..<jobs { direct.append(try Project.timeDirect(python: python, folder: trivial.folder)) }
        var endToEnd: [Double] = []
        for index in 0..<jobs { endToEnd.append(try await ferry.runToResult(trivial.zip, name: "trivial-\(index).zip")) }
        let overhead = Stats(endToEnd).p50 - Stats(direct).p50
        print("Trivial job, upload → result downloadable (ms)")
        print(Stats.header)
        print(Stats(direct).row("python3 code.py directly"))
        print(Stats(endToEnd).row("Ferry end to end"))
        print(String(format: "  overhead at p50: %.1f ms (target < 100 ms)", overhead * 1000))
        print("")

        // 2. Throughput: many jobs queued at once, against a bare loop of the same runs on the same cores.
        // A researcher's script uploads them, watches the job list like a results page does, and
        // downloads every result; the figure runs from the first upload to the last download.
        // Trivial jobs show Ferry's own cost per job; jobs that compute show what a lab gets.
        let computing = try Project.computing(in: work, seconds: computeSeconds)
        print("Throughput, jobs queued at once (jobs/s; target ≥ 70% of the bare loop)")
        print("                                   bare loop (\(parallel) at once)   Ferry")
        for (label, project, count) in [("\(burst) trivial jobs", trivial, burst), ("\(computeJobs) jobs of \(computeSeconds) s CPU", computing, computeJobs)] {
            let bareStart = Date()
            try await Project.runBareLoop(python: python, folder: project.folder, count: count, parallel: parallel)
            let bare = Double(count) / Date().timeIntervalSince(bareStart)
            let researcher = try await BenchClient.signUp(url: url, client: client)
            let start = Date()
            try await researcher.runMany(project.zip, count: count)
            let throughput = Double(count) / Date().timeIntervalSince(start)
            print(label.padding(toLength: 35, withPad: " ", startingAt: 0) + String(format: "%8.2f              %8.2f  (%.0f%%)", bare, throughput, 100 * throughput / bare))
        }
        print("")

        // 3. The environment cache: the same pinned requirements twice.
        let withRequirements = try Project.withRequirements(in: work, tag: UUID().uuidString.prefix(8).lowercased())
        let first = try await ferry.runToResult(withRequirements, name: "reqs-1.zip")
        let cached = try await ferry.runToResult(withRequirements, name: "reqs-2.zip")
        print("A job with requirements (six==1.16.0), upload → result (ms)")
        print(String(format: "  first run (environment built):  %8.1f", first * 1000))
        print(String(format: "  second run (environment cached): %8.1f", cached * 1000))
        print("")

        // 4. Memory while a 1 GiB bundle uploads.
        if !skipLargeUpload, let backendPID {
            let large = try Project.large(in: work, bytes: (1 << 30) - (4 << 20))
            let before = Project.peakMemory(of: backendPID)
            let size = (try FileManager.default.attributesOfItem(atPath: large)[.size] as? NSNumber)?.int64Value ?? 0
            let start = Date()
            let response = try await ferry.upload(large, name: "large.zip")
            let seconds = Date().timeIntervalSince(start)
            let after = Project.peakMemory(of: backendPID)
            print("Upload of a \(size / (1 << 20)) MiB bundle (answered \(response.status) in \(String(format: "%.1f", seconds)) s)")
            print(String(format: "  Backend peak memory before: %6.1f MiB", Double(before) / 1_048_576))
            print(String(format: "  Backend peak memory after:  %6.1f MiB (target < 100 MiB)", Double(after) / 1_048_576))
        }
    }
}

/// Percentiles of a set of durations in seconds.
struct Stats {
    let sorted: [Double]
    init(_ values: [Double]) { sorted = values.sorted() }

    func percentile(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    var p50: Double { percentile(0.5) }
    var p95: Double { percentile(0.95) }

    static let header = "  " + "".padding(toLength: 28, withPad: " ", startingAt: 0) + "   p50      p95      min"
    func row(_ label: String) -> String {
        "  " + label.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: " %7.1f  %7.1f  %7.1f", p50 * 1000, p95 * 1000, (sorted.first ?? 0) * 1000)
    }
}
