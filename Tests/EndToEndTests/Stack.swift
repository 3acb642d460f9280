import FerryHTTPClient
import FerryTestSupport
import Foundation
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Ferry as an operator runs it: Producer, ProcessingUnit, Consumer, Backend and Frontend as processes, on a
/// vhost of their own on the test broker, sharing one data folder.
final class Stack: Sendable {
    @TaskLocal static var current: Stack?

    let data: TemporaryDirectory
    /// The unit's sandbox root (work folders and environments), apart from the shared volume.
    let sandbox: TemporaryDirectory
    let backendURL: String
    /// The web pages, as a browser reaches them.
    let frontendURL: String
    /// The stack's one ProcessingUnit and Consumer (their /health and /metrics).
    let unitURL: String
    let consumerURL: String
    let client: HTTPClient
    private let running: Mutex<[RunningService]>
    /// How the unit was started, to start it again (`restartUnit`).
    private let unitLaunch: (arguments: [String], port: Int)
    private let vhost: String
    private var services: [RunningService] { running.withLock { $0 } }

    static let amqpURL = ProcessInfo.processInfo.environment["FERRY_TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5679/"
    static let managementURL = ProcessInfo.processInfo.environment["FERRY_TEST_RABBITMQ_MANAGEMENT_URL"] ?? "http://127.0.0.1:15679"

    /// The one-time token the Backend leaves for the operator to set up the first administrator.
    var setupToken: String? {
        (try? String(contentsOfFile: data.file("backend/setup-token"), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private init(
        data: TemporaryDirectory, sandbox: TemporaryDirectory, backendURL: String, frontendURL: String, unitURL: String, consumerURL: String, client: HTTPClient,
        services: [RunningService], unitLaunch: (arguments: [String], port: Int), vhost: String
    ) {
        self.data = data
        self.sandbox = sandbox
        self.backendURL = backendURL
        self.frontendURL = frontendURL
        self.unitURL = unitURL
        self.consumerURL = consumerURL
        self.client = client
        running = Mutex(services)
        self.unitLaunch = unitLaunch
        self.vhost = vhost
    }

    /// Starts the stack; `unitArguments` go to its ProcessingUnit besides the usual ones.
    /// A vhost of its own on the test broker, so that no other stack takes its jobs; returns its
    /// name and the URL that reaches it.
    static func makeVhost() async throws -> (name: String, url: String) {
        let vhost = "ferry-e2e-\(UUID().uuidString.prefix(8))"
        try await management("PUT", "/api/vhosts/\(vhost)", body: "{}")
        try await management("PUT", "/api/permissions/\(vhost)/guest", body: #"{"configure":".*","write":".*","read":".*"}"#)
        return (vhost, amqpURL.hasSuffix("/") ? amqpURL + vhost : amqpURL + "/" + vhost)
    }

    static func deleteVhost(_ name: String) async throws {
        try await management("DELETE", "/api/vhosts/\(name)", body: nil)
    }

    static func start(unitArguments: [String] = [], slots: Int = 4) async throws -> Stack {
        let (vhost, amqp) = try await makeVhost()

        // The shared volume is closed to everyone else (0700), as under a checkout in /root: the job
        // and build users reach only the unit's sandbox root.
        let data = try TemporaryDirectory("ferry-e2e")
        chmod(data.path, 0o700)
        let sandbox = try TemporaryDirectory("ferry-e2e-sandbox")
        let common = ["--data-dir", data.path, "--amqp-url", amqp, "--log-level", "warning"]
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(2), defaultTimeout: .seconds(60)))
        var services: [RunningService] = []
        // Each service gets a port chosen just before it starts. Another test may take that port in
        // between (suites run in parallel): the service then cannot bind, and /health may even be
        // answered by the other test's server. So a service counts as started only when it still runs
        // a moment after answering, and one that could not bind starts again on another port.
        func launch(_ executable: String, _ arguments: (Int) -> [String]) async throws -> (service: RunningService, port: Int, arguments: [String]) {
            for attempt in 1...5 {
                let port = try unusedPort(), launched = arguments(port)
                let service = try RunningService(executable, arguments: launched)
                var failure: (any Error)?
                do {
                    _ = try await service.waitForHealth(port: port, client: client)
                    try await Task.sleep(for: .milliseconds(200))
                    if service.isRunning { return (service, port, launched) }
                } catch {
                    failure = error
                }
                _ = try? await service.terminate()
                guard attempt < 5, service.standardError.contains("Address already in use") else {
                    throw failure ?? CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(executable) exited after starting: \(service.standardError)"])
                }
            }
            throw CancellationError()
        }
        // Small output limits, so that the disk-filler and file-count tests end quickly.
        let unitSettings = common + [
            "--unit-max-output-mib", "64", "--unit-max-output-files", "20000", "--unit-slots", "\(slots)", "--unit-sandbox-root", sandbox.path,
        ] + unitArguments
        let ports: (backend: Int, unit: Int, frontend: Int, consumer: Int)
        let unitLaunch: [String]
        do {
            let producer = try await launch("Producer") { ["--http-port", "\($0)"] + common }
            services.append(producer.service)
            let unit = try await launch("ProcessingUnit") { ["--http-port", "\($0)"] + unitSettings }
            services.append(unit.service)
            let consumer = try await launch("Consumer") { ["--http-port", "\($0)"] + common + ["--unit-url", "http://127.0.0.1:\(unit.port)", "--unit-slots", "\(slots)"] }
            services.append(consumer.service)
            let backend = try await launch("Backend") {
                ["--http-port", "\($0)"] + common + ["--producer-url", "http://127.0.0.1:\(producer.port)", "--auth-bcrypt-cost", "4"]
            }
            services.append(backend.service)
            let frontend = try await launch("Frontend") { ["--http-port", "\($0)"] + common + ["--backend-url", "http://127.0.0.1:\(backend.port)"] }
            services.append(frontend.service)
            ports = (backend.port, unit.port, frontend.port, consumer.port)
            unitLaunch = unit.arguments
        } catch {
            for service in services { _ = try? await service.terminate() }
            throw error
        }
        return Stack(
            data: data, sandbox: sandbox, backendURL: "http://127.0.0.1:\(ports.backend)", frontendURL: "http://127.0.0.1:\(ports.frontend)",
            unitURL: "http://127.0.0.1:\(ports.unit)", consumerURL: "http://127.0.0.1:\(ports.consumer)", client: client, services: services,
            unitLaunch: (unitLaunch, ports.unit), vhost: vhost
        )
    }

    /// Sends `signal` to the ProcessingUnit (SIGKILL: the unit crashed), waits for it to exit and
    /// starts it again with the same settings, as a supervisor would; returns once it is healthy.
    func restartUnit(after signal: Int32) async throws {
        let old = running.withLock { $0[1] }
        kill(old.pid, signal)
        _ = try await old.waitForExit()
        let unit = try RunningService("ProcessingUnit", arguments: unitLaunch.arguments)
        running.withLock { $0[1] = unit }
        _ = try await unit.waitForHealth(port: unitLaunch.port, client: client)
    }

    /// The ProcessingUnit's process id.
    var unitPID: Int32 { running.withLock { $0[1].pid } }

    /// Stops every service with SIGTERM (each must exit 0) and removes the vhost.
    func stop() async throws {
        for service in services.reversed() {
            let status = try await service.terminate()
            #expect(status == 0, "a service exited with \(status) on SIGTERM: \(service.standardError)")
        }
        try await client.shutdown()
        try await Self.management("DELETE", "/api/vhosts/\(vhost)", body: nil)
    }

    /// Processes whose environment names this job: none may outlive it.
    static func processes(of jobID: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.filter { pid in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return String(decoding: environ, as: UTF8.self).contains("FERRY_JOB_ID=\(jobID)")
        }
    }

    /// Everything the services wrote on stderr, for failure messages.
    var logs: String { services.map(\.standardError).joined(separator: "\n") }

    @discardableResult
    private static func management(_ method: String, _ path: String, body: String?) async throws -> Data {
        var request = URLRequest(url: URL(string: managementURL + path)!)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Basic \(Data("guest:guest".utf8).base64EncodedString())", forHTTPHeaderField: "Authorization")
        request.httpBody = body.map { Data($0.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        try #require((200..<300).contains(status), "RabbitMQ management \(method) \(path) answered \(status); is the test broker running (scripts/test)?")
        return data
    }

    /// Publishes `payload` straight to a queue of the stack's vhost, as any client of the broker could.
    func publish(_ payload: String, to queue: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "properties": ["delivery_mode": 2, "content_type": "application/json"], "routing_key": queue, "payload": payload, "payload_encoding": "string",
        ])
        try await Self.management("POST", "/api/exchanges/\(vhost)/amq.default/publish", body: String(decoding: body, as: UTF8.self))
    }

    /// Messages waiting in a queue of the stack's vhost.
    func messages(in queue: String) async throws -> Int {
        let data = try await Self.management("GET", "/api/queues/\(vhost)/\(queue)", body: nil)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["messages"] as? Int ?? 0
    }
}

/// Starts the stack once for a suite (as `start` makes it) and stops it when the suite is done.
struct StackTrait: SuiteTrait, TestScoping {
    var start: @Sendable () async throws -> Stack = { try await Stack.start() }
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let stack = try await start()
        do {
            try await Stack.$current.withValue(stack) { try await function() }
        } catch {
            try await stack.stop()
            throw error
        }
        try await stack.stop()
    }
}

extension Trait where Self == StackTrait {
    static var runningStack: Self { StackTrait() }
}
