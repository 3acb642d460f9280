import FerryTestSupport
import Foundation
import Testing

/// The whole experience in headless Chromium: Tests/Browser/browser_test.py drives the pages of the
/// test stack with selenium and saves a screenshot of every step to .build/test-artifacts/browser.
/// scripts/test installs Debian's chromium and chromium-driver and selenium (in .build/test-venv);
/// without them this test fails and says what is missing.
@Suite("Web pages in a real browser", .runningStack)
struct BrowserTests {
    var stack: Stack { Stack.current! }

    static let root = Repository.root

    @Test func aResearcherUploadsWatchesDownloadsAndCancelsInChromium() async throws {
        let python = ProcessInfo.processInfo.environment["FERRY_TEST_BROWSER_PYTHON"] ?? Self.root + "/.build/test-venv/bin/python"
        for (tool, fix) in [(python, "run scripts/test, which makes .build/test-venv with selenium"), ("/usr/bin/chromium", "apt-get install chromium"), ("/usr/bin/chromedriver", "apt-get install chromium-driver")] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: \(fix)")
        }
        let artifacts = Self.root + "/.build/test-artifacts/browser"
        try? FileManager.default.removeItem(atPath: artifacts)
        let setupToken = try #require(stack.setupToken, "the Backend left no setup token in \(stack.data.file("backend"))")
        let run = try await ChildProcess.run(
            python, [Self.root + "/Tests/Browser/browser_test.py", "--url", stack.frontendURL, "--artifacts", artifacts, "--setup-token", setupToken],
            includingErrors: true
        )
        #expect(run.status == 0, "the browser test failed (screenshots in \(artifacts)):\n\(run.output)\nservices said:\n\(stack.logs)")
        let shots = (try? FileManager.default.contentsOfDirectory(atPath: artifacts).filter { $0.hasSuffix(".png") }) ?? []
        #expect(shots.count >= 10, "screenshots: \(shots)")
    }
}
