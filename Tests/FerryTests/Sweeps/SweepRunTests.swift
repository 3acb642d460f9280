import FerryBroker
import FerryContracts
import Foundation
import Testing

@Suite("A sweep run's parameters")
struct SweepRunTests {
    static let sweepID = "a0fac8c0-c153-40a1-be5a-3135bdc78a39"

    @Test func aRunsMessageCarriesItsParametersThroughJSONAndChecksOut() throws {
        let run = SweepRun(sweepID: Self.sweepID, index: 3, parameters: [.init(name: "cutoff", value: "10"), .init(name: "seed", value: "2")])
        let message = JobMessage(
            jobID: UUID().uuidString.lowercased(), owner: UUID().uuidString.lowercased(), project: "demo", bundlePath: "", limits: .init(timeLimitSeconds: 60, memoryLimitMiB: 64),
            submittedAt: Date(), sweep: run
        )
        var fixed = message
        fixed.bundlePath = "bundles/\(message.jobID).zip"
        let decoded = try FerryJSON.decode(JobMessage.self, from: try FerryJSON.encode(fixed))
        #expect(decoded.sweep == run)
        try decoded.check(within: JobLimitMaxima())
        let id = message.jobID, owner = message.owner
        let text = """
            {"version":1,"jobID":"\(id)","owner":"\(owner)","project":"demo","bundlePath":"bundles/\(id).zip","limits":{"timeLimitSeconds":60,"memoryLimitMiB":64},\
            "submittedAt":"2026-12-06T06:42:49.671Z","sweep":{"sweepID":"\(Self.sweepID)","index":1,"parameters":[{"name":"a","value":"1"}]}}
            """
        try JSONDecoder.ferry().decode(JobMessage.self, from: Data(text.utf8)).check(within: JobLimitMaxima())
    }

    @Test func paramsJSONKeepsNumbersAndBooleansAndQuotesTheRest() throws {
        let run = SweepRun(sweepID: Self.sweepID, index: 1, parameters: [
            .init(name: "cutoff", value: "8"), .init(name: "rate", value: "0.5"), .init(name: "big", value: "1e-3"), .init(name: "flag", value: "true"),
            .init(name: "subject", value: "S01"), .init(name: "code", value: "007"), .init(name: "quote", value: "say \"hi\""), .init(name: "dots", value: "1."),
        ])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.parametersJSON.utf8)) as? [String: Any])
        #expect(object["cutoff"] as? Int == 8)
        #expect(object["rate"] as? Double == 0.5)
        #expect(object["big"] as? Double == 0.001)
        #expect(object["flag"] as? Bool == true)
        #expect(object["subject"] as? String == "S01")
        #expect(object["code"] as? String == "007", "a leading zero is not a JSON number: it stays the text written")
        #expect(object["quote"] as? String == "say \"hi\"")
        #expect(object["dots"] as? String == "1.")
        #expect(run.parametersJSON.hasPrefix("{\"cutoff\": 8, \"rate\": 0.5"), "the sweep's order is kept")
        #expect(run.environment["FERRY_PARAM_CUTOFF"] == "8" && run.environment["FERRY_RUN_INDEX"] == "1" && run.environment["FERRY_SWEEP_ID"] == Self.sweepID)
    }

    @Test(arguments: [
        ("2x", "is not a parameter name"), ("a-b", "is not a parameter name"), ("", "is not a parameter name"),
    ])
    func namesThatAreNotIdentifiersAreRefused(name: String, expected: String) {
        let run = SweepRun(sweepID: Self.sweepID, index: 1, parameters: [.init(name: name, value: "1")])
        #expect(run.problem()?.message.contains(expected) == true)
    }

    @Test func valuesAndPlacesOutsideTheRulesAreRefused() {
        for parameters in [[SweepParameter(name: "a", value: "")], [.init(name: "a", value: "x\ny")], [.init(name: "a", value: "1"), .init(name: "A", value: "2")], []] {
            #expect(SweepRun(sweepID: Self.sweepID, index: 1, parameters: parameters).problem() != nil, "\(parameters)")
        }
        #expect(SweepRun(sweepID: "not-a-uuid", index: 1, parameters: [.init(name: "a", value: "1")]).problem()?.field == "sweep.sweepID")
        #expect(SweepRun(sweepID: Self.sweepID, index: 0, parameters: [.init(name: "a", value: "1")]).problem()?.field == "sweep.index")
        // The sweep's size holds the run's own place; its throttle lets at least one run go.
        #expect(SweepRun(sweepID: Self.sweepID, index: 3, parameters: [.init(name: "a", value: "1")], runs: 2, throttle: 1).problem()?.field == "sweep.runs")
        #expect(SweepRun(sweepID: Self.sweepID, index: 3, parameters: [.init(name: "a", value: "1")], runs: 3, throttle: 0).problem()?.field == "sweep.throttle")
        #expect(SweepRun(sweepID: Self.sweepID, index: 3, parameters: [.init(name: "a", value: "1")], runs: 3, throttle: 1).problem() == nil)
    }
}
