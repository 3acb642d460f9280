import FerryTestSupport
import Foundation
@testable import ProcessingUnit
import Testing

/// The unit's start-up check of its sandbox, as compose runs it: two units start together, each in
/// a container of its own, so both are the same process id in their own PID namespace, and they
/// share one sandbox volume. Neither may take the other's test job for its own (a compose stack
/// whose second unit removed the first one's probe folder failed to start).
@Suite("The sandbox's start-up check")
struct SandboxProbeTests {
    @Test func unitsThatShareASandboxRootAndAProcessIDAllStart() async throws {
        // The real sandbox: root, bubblewrap and the job and build users (scripts/test makes them).
        try #require(geteuid() == 0, "the sandbox check runs as root, as the unit does")
        let root = try TemporaryDirectory()
        chmod(root.path, 0o711)
        try FileManager.default.createDirectory(atPath: root.path + "/work", withIntermediateDirectories: true)
        chmod(root.path + "/work", 0o711)
        let settings = SandboxSettings(mode: .bubblewrap)
        // Several rounds of four at once: what two containers starting together do, many times over.
        for _ in 0..<3 {
            let outcomes = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        do {
                            _ = try await Sandbox.prepare(settings, python: "/usr/bin/python3", sandboxRoot: root.path)
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            #expect(outcomes.isEmpty, "a unit failed its start-up check beside the others: \(outcomes)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: root.path + "/work")
        #expect(left.isEmpty, "the checks left \(left) behind")
    }
}
