import FerryTestSupport
import Foundation
import Testing

/// The shape the services rely on: the shared service library carries no C library into services that
/// do not need one, and every configuration key is declared once, in `ConfigurationKeys`.
@Suite("Service shape")
struct ServiceShapeTests {
    /// The libraries an executable of this build loads, from the dynamic loader itself.
    static func linkedLibraries(_ executable: String) async throws -> String {
        let outcome = try await ChildProcess.run("/usr/bin/ldd", [BuildProducts.path(executable)])
        try #require(outcome.status == 0, "ldd \(executable): \(outcome.output)")
        return outcome.output
    }

    @Test func theFrontendLinksNeitherTheBrokerNorTheZipLibrary() async throws {
        let frontend = try await Self.linkedLibraries("Frontend")
        #expect(!frontend.contains("librabbitmq"), "the Frontend links librabbitmq:\n\(frontend)")
        #expect(!frontend.contains("libzip"), "the Frontend links libzip:\n\(frontend)")
        // The check itself can fail: the services that use them do link them.
        #expect(try await Self.linkedLibraries("Producer").contains("librabbitmq"))
        #expect(try await Self.linkedLibraries("ProcessingUnit").contains("libzip"))
    }

    @Test func theServiceLibraryImportsNoCWrapper() throws {
        let folder = CLibraryBoundaryTests.sources + "/FerryService"
        for file in try FileManager.default.contentsOfDirectory(atPath: folder) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            for wrapper in ["FerryAMQP", "FerryZip", "FerryBundle", "FerryHTTPClient", "FerrySeccomp"] {
                #expect(!text.contains("import \(wrapper)\n"), "FerryService/\(file) imports \(wrapper)")
            }
        }
    }

    @Test func everyConfigurationKeyIsDeclaredInConfigurationKeys() throws {
        var literals: [String] = []
        let enumerator = try #require(FileManager.default.enumerator(atPath: CLibraryBoundaryTests.sources))
        let pattern = try Regex(#"(forKey|key): ""#)
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".swift"), !relative.hasSuffix("ConfigurationKeys.swift") else { continue }
            let text = try String(contentsOfFile: CLibraryBoundaryTests.sources + "/" + relative, encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains(pattern) {
                literals.append("\(relative): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(literals.isEmpty, "configuration keys written out instead of named in ConfigurationKeys: \(literals)")
    }
}
