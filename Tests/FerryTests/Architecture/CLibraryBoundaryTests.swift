import Foundation
import Testing

/// C stays in its cell: only each wrapper target imports its C module, so no C type can leak elsewhere.
@Suite("C library boundaries")
struct CLibraryBoundaryTests {
    static let sources = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources").path

    static let owners = ["CRabbitMQ": "FerryAMQP", "CZip": "FerryZip", "CCurl": "FerryHTTPClient", "CSeccomp": "FerrySeccomp"]

    @Test func onlyTheWrapperTargetsImportTheCModules() throws {
        var offenders: [String] = []
        var importers: [String: Set<String>] = [:]
        let enumerator = try #require(FileManager.default.enumerator(atPath: Self.sources))
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".swift") else { continue }
            let target = String(relative.split(separator: "/")[0])
            let text = try String(contentsOfFile: Self.sources + "/" + relative, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                      let owner = Self.owners[words[index + 1]] else { continue }
                importers[words[index + 1], default: []].insert(target)
                if owner != target { offenders.append("\(relative): \(line)") }
            }
        }
        #expect(offenders.isEmpty, "C modules imported outside their wrapper: \(offenders)")
        #expect(importers == ["CRabbitMQ": ["FerryAMQP"], "CZip": ["FerryZip"], "CCurl": ["FerryHTTPClient"], "CSeccomp": ["FerrySeccomp"]])
    }
}
