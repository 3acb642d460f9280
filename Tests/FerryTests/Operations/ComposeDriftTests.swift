import FerryTestSupport
import Foundation
import Testing
import Yams

/// docker-compose.yml and scripts/run start the same services with the same settings: each test
/// reads both files, so that one cannot change without the other.
@Suite("Compose file and scripts/run agree")
struct ComposeDriftTests {
    static let root = Repository.root

    /// A service as scripts/run starts it: its executable and the settings it is given.
    struct RunService {
        var name: String
        var executable: String
        var settings: Set<String>
    }

    /// The `services=(...)` entries of scripts/run (`name|Executable|port|--flag value ...`), each
    /// flag as the environment variable it equals (`--producer-url` is `FERRY_PRODUCER_URL`).
    static func runServices() throws -> (services: [RunService], exported: Set<String>) {
        let script = try String(contentsOfFile: root + "/scripts/run", encoding: .utf8)
        var services: [RunService] = []
        for match in script.matches(of: #/"([a-z0-9-]+)\|([A-Za-z]+)\|[^|"]*\|([^"]*)"/#) {
            let flags = match.3.split(separator: " ").filter { $0.hasPrefix("--") }
            let settings = Set(flags.map { "FERRY_" + $0.dropFirst(2).replacingOccurrences(of: "-", with: "_").uppercased() })
            services.append(RunService(name: String(match.1), executable: String(match.2), settings: settings))
        }
        let exported = Set(script.matches(of: #/(?m)^export (FERRY_[A-Z_]+)=/#).map { String($0.1) })
        return (services, exported)
    }

    /// The compose file's services after `docker compose config` resolved its anchors and variables.
    static func resolvedServices() async throws -> [String: [String: Any]] {
        let tool = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let compose = try #require(tool, "docker-compose is missing: scripts/test installs Debian's docker-compose")
        // .env.example holds no password on purpose (see below); the check gives one, as .env would.
        let resolved = try await ChildProcess.run(
            "/usr/bin/env", ["RABBITMQ_PASSWORD=only-for-the-check", compose, "--project-directory", root, "--env-file", root + "/.env.example", "-f", root + "/docker-compose.yml", "config"],
            includingErrors: true
        )
        try #require(resolved.status == 0, "docker-compose config failed: \(resolved.output)")
        let document = try #require(try Yams.load(yaml: resolved.output) as? [String: Any])
        let services = try #require(document["services"] as? [String: Any])
        return services.mapValues { $0 as? [String: Any] ?? [:] }
    }

    /// Each compose service's build target and the names of the settings it is given.
    static func composeServices() async throws -> [String: (target: String?, environment: Set<String>)] {
        var result: [String: (target: String?, environment: Set<String>)] = [:]
        for (name, service) in try await resolvedServices() {
            let target = (service["build"] as? [String: Any])?["target"] as? String
            let environment: Set<String>
            if let map = service["environment"] as? [String: Any] {
                environment = Set(map.keys)
            } else {
                environment = Set((service["environment"] as? [String] ?? []).map { String($0.split(separator: "=")[0]) })
            }
            result[name] = (target, environment)
        }
        return result
    }

    /// Compose's one-shot helpers, which scripts/run does in its own lines (the internal token).
    static let helperTargets: Set<String> = ["secrets"]

    /// Compose's build target of each executable.
    static func target(of executable: String) -> String {
        executable.replacing(#/([a-z])([A-Z])/#) { "\($0.1)-\($0.2)" }.lowercased()
    }

    @Test func bothStartTheSameServices() async throws {
        let run = try Self.runServices().services
        let compose = try await Self.composeServices()
        #expect(run.count >= 5, "scripts/run's services were not found: \(run.map(\.name))")
        let runTargets = Set(run.map { Self.target(of: $0.executable) })
        let composeTargets = Set(compose.values.compactMap(\.target)).subtracting(Self.helperTargets)
        #expect(runTargets == composeTargets, "scripts/run starts \(runTargets.sorted()), compose builds \(composeTargets.sorted())")
        #expect(compose["rabbitmq"] != nil, "compose runs the broker")
        // The same number of unit pairs, so that the two are scaled alike.
        let runUnits = run.filter { $0.executable == "ProcessingUnit" }.count
        let composeUnits = compose.values.filter { $0.target == "processing-unit" }.count
        #expect(runUnits == composeUnits && runUnits == run.filter { $0.executable == "Consumer" }.count)
    }

    @Test func everySettingScriptsRunGivesAServiceComposeGivesItToo() async throws {
        let (run, exported) = try Self.runServices()
        let compose = try await Self.composeServices()
        for service in run {
            let matching = compose.filter { $0.value.target == Self.target(of: service.executable) }
            #expect(!matching.isEmpty, "no compose service builds \(service.executable)")
            for (name, composed) in matching {
                let missing = service.settings.subtracting(composed.environment)
                #expect(missing.isEmpty, "compose's \(name) lacks \(missing.sorted()), which scripts/run gives \(service.name)")
            }
        }
        // What scripts/run exports to all its services, compose sets too (the data folder for all,
        // the broker's URL, the unit's shutdown grace for the units).
        // A secret may come as a file instead (FERRY_INTERNAL_TOKEN_FILE, from compose's secrets volume).
        let everywhere = compose.filter { $0.value.target != nil }.values.map(\.environment).reduce(Set<String>()) { $0.union($1) }
        let missing = exported.filter { !everywhere.contains($0) && !everywhere.contains($0 + "_FILE") }
        #expect(missing.isEmpty, "compose lacks \(missing.sorted()), which scripts/run exports")
    }

    /// What each kind of service uses of the broker's account, the shared volume and the internal
    /// token: the Backend all three, the Producer and the Consumers the broker, the units the volume.
    static let uses: [String: Set<String>] = [
        "backend": ["FERRY_AMQP_URL", "FERRY_DATA_DIR", "FERRY_INTERNAL_TOKEN_FILE"],
        "producer": ["FERRY_AMQP_URL", "FERRY_INTERNAL_TOKEN_FILE"],
        "consumer": ["FERRY_AMQP_URL", "FERRY_INTERNAL_TOKEN_FILE"],
        "processing-unit": ["FERRY_DATA_DIR", "FERRY_INTERNAL_TOKEN_FILE"],
        "frontend": [],
    ]

    /// Each service gets what it uses and nothing more of the others' secrets: a unit never sees the
    /// broker's password, the Frontend none of them.
    @Test func eachServiceGetsOnlyTheSecretsItUses() async throws {
        let compose = try await Self.composeServices()
        let guarded: Set<String> = ["FERRY_AMQP_URL", "FERRY_DATA_DIR", "FERRY_INTERNAL_TOKEN", "FERRY_INTERNAL_TOKEN_FILE"]
        for (name, service) in compose {
            guard let target = service.target, !Self.helperTargets.contains(target) else { continue }
            let uses = try #require(Self.uses[target], "\(name) builds \(target), which this test does not know")
            #expect(service.environment.intersection(guarded) == uses, "compose's \(name) gets \(service.environment.intersection(guarded).sorted()), it uses \(uses.sorted())")
        }
    }


    /// The volumes and networks of each service are those it uses: the token's volume only for
    /// the internal services, the shared volume only for the Backend and the units; the Frontend
    /// shares a network with the Backend alone, the broker's network holds the Backend, the
    /// Producer and the Consumers, and a unit's network its Consumer alone. ComposeStackTests show
    /// on the running stack that what these keep apart cannot reach each other.
    @Test func eachServiceMountsAndReachesOnlyWhatItUses() async throws {
        let services = try await Self.resolvedServices()
        func volumes(_ name: String) -> Set<String> {
            // Long syntax (Compose v2) or `source:target:mode` (Debian's docker-compose).
            Set((services[name]?["volumes"] as? [Any] ?? []).compactMap { entry in
                (entry as? [String: Any])?["source"] as? String ?? (entry as? String)?.split(separator: ":").first.map(String.init)
            })
        }
        func networks(_ name: String) -> Set<String> {
            if let map = services[name]?["networks"] as? [String: Any] { return Set(map.keys) }
            return Set(services[name]?["networks"] as? [String] ?? [])
        }
        func members(_ network: String) -> Set<String> { Set(services.keys.filter { networks($0).contains(network) }) }
        let units = services.keys.filter { (services[$0]?["build"] as? [String: Any])?["target"] as? String == "processing-unit" }.sorted()
        let consumers = Set(services.keys.filter { (services[$0]?["build"] as? [String: Any])?["target"] as? String == "consumer" })
        #expect(units.count >= 2 && consumers.count == units.count, "units \(units), consumers \(consumers.sorted())")
        #expect(Set(services.keys.filter { volumes($0).contains("ferry-data") }) == Set(["backend"] + units))
        #expect(Set(services.keys.filter { volumes($0).contains("ferry-secrets") }) == Set(["secrets", "backend", "producer"] + units).union(consumers))
        #expect(volumes("frontend").isEmpty, "\(volumes("frontend"))")
        #expect(services["secrets"]?["network_mode"] as? String == "none", "the secrets service needs no network")
        // Every network the Frontend is on holds the Backend or nothing else (the published port's).
        for network in networks("frontend") {
            #expect(members(network) == ["frontend", "backend"] || members(network) == ["frontend"], "\(network): \(members(network).sorted())")
        }
        let broker = networks("rabbitmq")
        #expect(broker.count == 1 && members(broker.first!) == Set(["rabbitmq", "backend", "producer"]).union(consumers), "\(broker): \(broker.first.map(members)?.sorted() ?? [])")
        for unit in units {
            let suffix = unit.split(separator: "-").last.map(String.init) ?? ""
            #expect(networks(unit).count == 1, "\(unit) is on \(networks(unit).sorted())")
            for network in networks(unit) {
                #expect(members(network) == [unit, "consumer-" + suffix], "\(network): \(members(network).sorted())")
            }
        }
    }

    /// No service is privileged: the units get only the capabilities and the seccomp profile of
    /// their own that sandboxing jobs needs, and every other service runs with Docker's defaults.
    /// ComposeStackTests show that the units sandbox jobs so (start-up check, limits, hostile jobs).
    @Test func noServiceIsPrivilegedAndTheUnitsGetOnlyWhatSandboxingNeeds() async throws {
        let services = try await Self.resolvedServices()
        for (name, service) in services {
            #expect(service["privileged"] as? Bool != true, "\(name) is privileged")
            let target = (service["build"] as? [String: Any])?["target"] as? String
            let added = Set(service["cap_add"] as? [String] ?? [])
            guard target == "processing-unit" else {
                #expect(added.isEmpty && service["security_opt"] == nil, "\(name) gets \(added.sorted()) \(service["security_opt"] ?? "")")
                continue
            }
            #expect(service["cap_drop"] as? [String] == ["ALL"], "\(name) keeps Docker's default capabilities")
            #expect(added == ["SYS_ADMIN", "SETUID", "SETGID", "SETPCAP", "CHOWN", "FOWNER", "DAC_OVERRIDE", "KILL"], "\(name): \(added.sorted())")
            let options = (service["security_opt"] as? [String] ?? []).map { $0.replacingOccurrences(of: ":", with: "=") }
            #expect(!options.contains("seccomp=unconfined") && options.contains("seccomp=./Dockerfiles/unit-seccomp.json"), "\(name): \(options)")
        }
        let profile = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/Dockerfiles/unit-seccomp.json"))) as? [String: Any]
        let denied = Set(((profile?["syscalls"] as? [[String: Any]])?.first?["names"] as? [String]) ?? [])
        #expect(denied.isSuperset(of: ["init_module", "kexec_load", "bpf", "ptrace", "keyctl", "open_by_handle_at", "io_uring_setup"]), "\(denied.sorted())")
        #expect(!denied.contains("pivot_root") && !denied.contains("mount") && !denied.contains("unshare"), "bubblewrap needs pivot_root, mount and unshare")
    }

    /// The example settings hold no usable password: copied unchanged, compose refuses to start and
    /// says which setting to fill in. The operator's .env stays out of git.
    @Test func theExampleSettingsHoldNoPasswordAndDotEnvIsIgnored() async throws {
        let tool = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let compose = try #require(tool, "docker-compose is missing: scripts/test installs Debian's docker-compose")
        let refused = try await ChildProcess.run(
            "/usr/bin/env", ["-u", "RABBITMQ_PASSWORD", compose, "--project-directory", Self.root, "--env-file", Self.root + "/.env.example", "-f", Self.root + "/docker-compose.yml", "config", "-q"],
            includingErrors: true
        )
        #expect(refused.status != 0, "compose accepted .env.example's password")
        #expect(refused.output.contains("RABBITMQ_PASSWORD"), "\(refused.output)")
        let ignored = try await ChildProcess.run("/usr/bin/git", ["-C", Self.root, "check-ignore", "-q", ".env"])
        #expect(ignored.status == 0, ".env is not in .gitignore")
    }
}
