import Foundation

/// What a run of a sweep is given: its sweep, its place in it (1-based) and its parameter values,
/// in the order the sweep names them. `code.py` sees them as `params.json` and `FERRY_PARAM_<NAME>`.
/// The sweep's size and throttle travel along, so that a unit on the Slurm executor can make the
/// whole sweep one job array (`--array=1-runs%throttle`); a message without them (from a Backend
/// before them) is run as its own batch job.
public struct SweepRun: Codable, Sendable, Equatable {
    public var sweepID: String
    public var index: Int
    public var parameters: [SweepParameter]
    /// How many runs the sweep has (its highest index), and how many may run at once.
    public var runs: Int?
    public var throttle: Int?

    public init(sweepID: String, index: Int, parameters: [SweepParameter], runs: Int? = nil, throttle: Int? = nil) {
        self.sweepID = sweepID
        self.index = index
        self.parameters = parameters
        self.runs = runs
        self.throttle = throttle
    }

    /// Parameters a sweep may have, and the longest value (bytes); both keep environments small.
    public static let maxParameters = 32
    public static let maxValueBytes = 1_024
    public static let maxRunIndex = 100_000

    /// The checks every service applies: a UUID sweep id, an index in range, identifier names
    /// (unique regardless of case, since environment variables are upper case) and plain values.
    /// Answers what is wrong, or nil.
    public func problem() -> JobMessageProblem? {
        guard JobID.isValid(sweepID) else { return JobMessageProblem(field: "sweep.sweepID", message: "is not a sweep id (a lowercase UUID)") }
        guard (1...Self.maxRunIndex).contains(index) else { return JobMessageProblem(field: "sweep.index", message: "\(index) is outside 1...\(Self.maxRunIndex)") }
        if let runs, !(index...Self.maxRunIndex).contains(runs) {
            return JobMessageProblem(field: "sweep.runs", message: "\(runs) is outside \(index)...\(Self.maxRunIndex) (at least the run's own index)")
        }
        if let throttle, !(1...Self.maxRunIndex).contains(throttle) {
            return JobMessageProblem(field: "sweep.throttle", message: "\(throttle) is outside 1...\(Self.maxRunIndex)")
        }
        guard (1...Self.maxParameters).contains(parameters.count) else {
            return JobMessageProblem(field: "sweep.parameters", message: "must hold 1 to \(Self.maxParameters) parameters")
        }
        var seen = Set<String>()
        for parameter in parameters {
            guard SweepParameter.isName(parameter.name) else {
                return JobMessageProblem(field: "sweep.parameters", message: "\(parameter.name.prefix(80)) is not a parameter name (a letter or _, then letters, digits or _)")
            }
            guard seen.insert(parameter.name.uppercased()).inserted else {
                return JobMessageProblem(field: "sweep.parameters", message: "\(parameter.name) appears twice")
            }
            guard SweepParameter.isValue(parameter.value) else {
                return JobMessageProblem(field: "sweep.parameters", message: "the value of \(parameter.name) is empty, longer than \(Self.maxValueBytes) bytes or holds control characters")
            }
        }
        return nil
    }

    /// The environment variables of the run: `FERRY_PARAM_<NAME>` for each parameter, its index and its sweep.
    public var environment: [String: String] {
        var variables = ["FERRY_SWEEP_ID": sweepID, "FERRY_RUN_INDEX": "\(index)"]
        for parameter in parameters { variables["FERRY_PARAM_" + parameter.name.uppercased()] = parameter.value }
        return variables
    }

    /// `params.json`: the parameters as one JSON object in the sweep's order, numbers and booleans
    /// as such (`8`, `0.5`, `true`), everything else a string.
    public var parametersJSON: String {
        let members = parameters.map { parameter in
            Self.jsonString(parameter.name) + ": " + (SweepParameter.jsonLiteral(parameter.value) ?? Self.jsonString(parameter.value))
        }
        return "{" + members.joined(separator: ", ") + "}\n"
    }

    static func jsonString(_ text: String) -> String {
        let data = try! JSONEncoder().encode([text])  // an array: every Foundation accepts it at the top
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}

/// One parameter's value in one run, as the researcher wrote it.
public struct SweepParameter: Codable, Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// A Python identifier in ASCII, at most 64 characters.
    public static func isName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, text.unicodeScalars.count <= 64 else { return false }
        func letter(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || scalar == "_" }
        return letter(first) && text.unicodeScalars.allSatisfy { letter($0) || ("0"..."9").contains($0) }
    }

    /// Not empty, at most `SweepRun.maxValueBytes`, no control characters (an environment variable
    /// cannot hold a NUL, and a value is one line of a table).
    public static func isValue(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= SweepRun.maxValueBytes && !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// The value as a JSON number or boolean when it reads as one exactly; nil for a string.
    public static func jsonLiteral(_ value: String) -> String? {
        if value == "true" || value == "false" { return value }
        let scalars = Array(value.unicodeScalars)
        var position = 0
        func digits() -> Int {
            let start = position
            while position < scalars.count, ("0"..."9").contains(scalars[position]) { position += 1 }
            return position - start
        }
        if position < scalars.count, scalars[position] == "-" { position += 1 }
        let integer = digits()
        // JSON's own rule: no leading zeros (a "007" stays the string the researcher wrote).
        guard integer > 0, !(integer > 1 && scalars[position - integer] == "0") else { return nil }
        if position < scalars.count, scalars[position] == "." {
            position += 1
            guard digits() > 0 else { return nil }
        }
        if position < scalars.count, scalars[position] == "e" || scalars[position] == "E" {
            position += 1
            if position < scalars.count, scalars[position] == "+" || scalars[position] == "-" { position += 1 }
            guard digits() > 0 else { return nil }
        }
        guard position == scalars.count, let number = Double(value), number.isFinite else { return nil }
        return value
    }
}
