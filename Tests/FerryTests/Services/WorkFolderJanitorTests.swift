import FerryTestSupport
import Foundation
import Logging
@testable import ProcessingUnit
import Testing

/// Finished jobs' work folders leave the unit's sandbox root after the time the operator keeps
/// them; running jobs' folders (no manifest yet) are never touched.
@Suite("Work folder janitor")
struct WorkFolderJanitorTests {
    @Test func finishedJobsLoseTheirWorkFolderOnceKeptLongEnoughAndRunningOnesNever() throws {
        let data = try TemporaryDirectory(), sandbox = try TemporaryDirectory()
        for job in ["finished", "running"] { try sandbox.write("work/\(job)/project/output/big.bin", "data") }
        try data.write("jobs/finished/manifest.json", "{}")
        let keeping = WorkFolderJanitor(jobs: data.file("jobs"), workFolders: sandbox.file("work"), keep: 3600, logger: Logger(label: "test"))
        #expect(keeping.sweep() == 0, "a work folder went before its time")
        #expect(keeping.sweep(now: Date().addingTimeInterval(3700)) == 1)
        #expect(!FileManager.default.fileExists(atPath: sandbox.file("work/finished")))
        #expect(FileManager.default.fileExists(atPath: data.file("jobs/finished/manifest.json")))
        #expect(FileManager.default.fileExists(atPath: sandbox.file("work/running/project/output/big.bin")), "a running job's folder was removed")
    }
}
