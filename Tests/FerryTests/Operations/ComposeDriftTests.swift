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

    /// The compose file after `docker compose config` resolved its anchors and variables.
    static func composeServices() async throws -> [String: (target: String?, environment: Set<String>)] {
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
        var result: [String: (target: String?, environment: Set<String>)] = [:]
        for (name, value) in services {
            let service = value as? [String: Any] ?? [:]
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
        for (name, service) in compose where service.target != nil && service.target != "frontend" && !Self.helperTargets.contains(service.target!) {
            #expect(service.environment.isSuperset(of: ["FERRY_AMQP_URL", "FERRY_DATA_DIR", "FERRY_INTERNAL_TOKEN_FILE"]), "compose's \(name) lacks the broker, the data folder or the internal token")
        }
    }

    /// The Frontend is the one service the public reaches: it holds no secret of the others.
    @Test func theFrontendGetsNoSecretOfTheOtherServices() async throws {
        let compose = try await Self.composeServices()
        let frontend = try #require(compose.values.first { $0.target == "frontend" })
        #expect(frontend.environment.isDisjoint(with: ["FERRY_AMQP_URL", "FERRY_INTERNAL_TOKEN", "FERRY_INTERNAL_TOKEN_FILE"]), "\(frontend.environment.sorted())")
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
