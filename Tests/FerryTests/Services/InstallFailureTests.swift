@testable import ProcessingUnit
import Testing

/// The installer's own words become the reason a researcher reads, and an index that cannot be
/// reached (Ferry's to retry) is told apart from a requirement that can never install (theirs to
/// fix). The logs are what uv 0.13 and pip 23 print.
@Suite("Install failures")
struct InstallFailureTests {
    @Test func uvsNoSolutionIsTheRequirementsFault() {
        let log = """
            Using Python 3.11.2 environment at: /var/lib/ferry/data/envs/abc
            error: No solution found when resolving dependencies
              cause: Because there is no version of six==9.9.9 and you require six==9.9.9, we can conclude that your requirements are unsatisfiable.
            """
        let failure = InstallFailure.from(log: log, sourceBuildsAllowed: false, fallback: "exit 1")
        #expect(failure.kind == .requirements)
        #expect(failure.summary.hasPrefix("Because there is no version of six==9.9.9"), "\(failure.summary)")
    }

    @Test func aMissingWheelSaysSourceBuildsAreOff() {
        let log = """
            error: No solution found when resolving dependencies
              cause: Because pyyaml==5.3.1 has no usable wheels and you require pyyaml==5.3.1, we can conclude that your requirements are unsatisfiable.

            hint: Wheels are required for `pyyaml` because building from source is disabled for all packages (i.e., with `--no-build`)
            """
        let failure = InstallFailure.from(log: log, sourceBuildsAllowed: false, fallback: "exit 1")
        #expect(failure.kind == .requirements)
        #expect(failure.summary.contains("pyyaml==5.3.1 has no usable wheels") && failure.summary.contains("installs wheels only"), "\(failure.summary)")
    }

    @Test func pipsMissingVersionIsTheRequirementsFault() {
        let log = """
            ERROR: Could not find a version that satisfies the requirement six==9.9.9 (from versions: 1.15.0, 1.16.0, 1.17.0)
            ERROR: No matching distribution found for six==9.9.9
            """
        let failure = InstallFailure.from(log: log, sourceBuildsAllowed: false, fallback: "exit 1")
        #expect(failure.kind == .requirements)
        #expect(failure.summary.contains("six==9.9.9") && failure.summary.contains("1.16.0"), "\(failure.summary)")
    }

    @Test(arguments: [
        """
        error: Request failed after 3 retries in 6.5s
          cause: Failed to fetch: http://127.0.0.1:1/simple/six/
          cause: error sending request for url (http://127.0.0.1:1/simple/six/)
          cause: Connection refused (os error 111)
        """,
        """
        WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection refused')': /simple/six/
        ERROR: Could not find a version that satisfies the requirement six (from versions: none)
        ERROR: No matching distribution found for six
        """,
    ])
    func anIndexThatCannotBeReachedIsFerrysToRetry(log: String) {
        let failure = InstallFailure.from(log: log, sourceBuildsAllowed: false, fallback: "exit 1")
        #expect(failure.kind == .indexUnavailable, "\(failure)")
        #expect(failure.summary.contains("could not be reached"))
    }
}
