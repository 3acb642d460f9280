import FerryContracts
import Foundation
import Testing

@Suite("Contracts")
struct ContractTests {
    @Test func statusNamesAreThoseOfThePublicAPI() {
        #expect(JobStatus.allCases.map(\.rawValue) == [
            "submitted", "queued", "preparing", "running", "succeeded", "failed", "timed_out", "killed", "canceled", "error",
        ])
    }

    @Test func aFinishedJobNeverMovesAgain() {
        for final in JobStatus.allCases where final.isFinal {
            for next in JobStatus.allCases {
                #expect(!final.canMove(to: next), "\(final) → \(next)")
            }
        }
    }

    @Test func eventsOnlyMoveAJobForward() {
        #expect(JobStatus.submitted.canMove(to: .queued))
        #expect(JobStatus.queued.canMove(to: .running))
        #expect(JobStatus.running.canMove(to: .succeeded))
        #expect(JobStatus.queued.canMove(to: .canceled))
        #expect(JobStatus.submitted.canMove(to: .error))
        #expect(!JobStatus.running.canMove(to: .preparing))  // a late "preparing" after "running"
        #expect(!JobStatus.running.canMove(to: .running))    // a duplicate
        #expect(!JobStatus.queued.canMove(to: .submitted))
        // The one step back: prepared, then waiting in a cluster's queue; never once it ran.
        #expect(JobStatus.preparing.canMove(to: .queued))
        #expect(!JobStatus.running.canMove(to: .queued))
    }

    @Test func messagesSurviveJSONRoundTrips() throws {
        let encoder = JSONEncoder.ferry()
        let decoder = JSONDecoder.ferry()
        let date = Date(timeIntervalSince1970: 1_790_000_000.125)

        let message = JobMessage(jobID: "j1", owner: "u1", project: "demo", bundlePath: "bundles/j1.zip",
                                 limits: .init(timeLimitSeconds: 3600, memoryLimitMiB: 2048), submittedAt: date)
        #expect(try decoder.decode(JobMessage.self, from: encoder.encode(message)) == message)

        let event = JobEvent(jobID: "j1", status: .timedOut, at: date, unit: "unit-1", reason: "wall time of 3600 s exceeded")
        let json = String(decoding: try encoder.encode(event), as: UTF8.self)
        #expect(json.contains(#""status":"timed_out""#))
        #expect(try decoder.decode(JobEvent.self, from: Data(json.utf8)) == event)
    }

    @Test func datesKeepMillisecondsAndOlderFormsStillRead() throws {
        struct Stamp: Codable, Equatable { var at: Date }
        let stamp = Stamp(at: Date(timeIntervalSince1970: 1_790_000_000.125))
        let json = String(decoding: try JSONEncoder.ferry().encode(stamp), as: UTF8.self)
        #expect(json == #"{"at":"2026-09-21T14:13:20.125Z"}"#)
        #expect(try JSONDecoder.ferry().decode(Stamp.self, from: Data(json.utf8)) == stamp)
        let whole = try JSONDecoder.ferry().decode(Stamp.self, from: Data(#"{"at":"2026-09-21T14:13:20Z"}"#.utf8))
        #expect(whole.at == Date(timeIntervalSince1970: 1_790_000_000))
        #expect(throws: DecodingError.self) { try JSONDecoder.ferry().decode(Stamp.self, from: Data(#"{"at":"yesterday"}"#.utf8)) }
    }

    @Test func topologyNamesMatchTheDesign() {
        #expect(Topology.jobsQueue == "ferry.jobs")
        #expect(Topology.eventsQueue == "ferry.events")
        #expect(Topology.deadLetterExchange == "ferry.dead")
        #expect(Topology.deadLetterQueue == "ferry.dead-letters")
        #expect(Topology.controlExchange == "ferry.control")
    }
}
