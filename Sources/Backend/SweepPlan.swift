import FerryContracts
import FerryService
import Foundation

/// The parameter sets of a sweep, from a grid (`cutoff=8,10,12`, `seed=1..5`, one parameter per line
/// or separated by `;`, combined as a product) or from a `sweep.csv` (a header of names, a row per
/// run). Every mistake is refused with what to fix, before anything is stored or run.
struct SweepPlan: Sendable, Equatable {
    var names: [String]
    /// One row per run, a value per name.
    var runs: [[String]]

    /// The values of one run, named.
    func parameters(ofRun index: Int) -> [SweepParameter] {
        zip(names, runs[index]).map { SweepParameter(name: $0, value: $1) }
    }

    static func invalid(_ code: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, code: "sweep.\(code)", message: message)
    }

    // MARK: Grid

    /// A range `a..b` of whole numbers holds at most this many values.
    static let maxRangeValues = 10_000

    static func grid(_ text: String, maxRuns: Int) throws -> SweepPlan {
        // Character.isNewline: a browser's form sends a textarea's lines with CRLF, one Character in Swift.
        let entries = text.split(whereSeparator: { $0.isNewline || $0 == ";" })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !entries.isEmpty else {
            throw invalid("empty_grid", "The grid is empty. Write one parameter per line, like cutoff=8,10,12 or seed=1..5.")
        }
        guard entries.count <= SweepRun.maxParameters else {
            throw invalid("too_many_parameters", "The grid has \(entries.count) parameters; a sweep may have at most \(SweepRun.maxParameters).")
        }
        var names: [String] = [], values: [[String]] = []
        for entry in entries {
            guard let equals = entry.firstIndex(of: "=") else {
                throw invalid("invalid_grid", "\"\(entry.prefix(60))\" has no '='. Write each parameter as name=values, like cutoff=8,10,12.")
            }
            let name = entry[..<equals].trimmingCharacters(in: .whitespaces)
            try checkName(name, names: names)
            let list = try Self.values(String(entry[entry.index(after: equals)...]), of: name)
            names.append(name)
            values.append(list)
        }
        let count = try runCount(values.map(\.count), maxRuns: maxRuns)
        // The product, the first parameter varying slowest (as nested loops in that order).
        var runs: [[String]] = [[]]
        runs.reserveCapacity(count)
        for list in values {
            runs = runs.flatMap { prefix in list.map { prefix + [$0] } }
        }
        return SweepPlan(names: names, runs: runs)
    }

    /// `8,10,12`, `1..5` or a mix (`1..3,10`); values are trimmed, and none may be empty.
    static func values(_ text: String, of name: String) throws -> [String] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var values: [String] = []
        for part in parts {
            guard !part.isEmpty else {
                throw invalid("empty_value", "\(name) has an empty value. Give its values separated by commas, like \(name)=8,10,12.")
            }
            if let range = part.range(of: ".."), let low = Int(part[..<range.lowerBound]), let high = Int(part[range.upperBound...]) {
                guard low <= high else {
                    throw invalid("invalid_range", "\(name)=\(part): a range goes from the smaller number to the larger, like \(high)..\(low).")
                }
                guard high - low < maxRangeValues, values.count + (high - low + 1) <= maxRangeValues else {
                    throw invalid("too_many_runs", "\(name)=\(part) holds more than \(maxRangeValues) values.")
                }
                values += (low...high).map(String.init)
            } else if part.contains("..") {
                throw invalid("invalid_range", "\(name)=\(part) is not a range of whole numbers; write it like 1..5.")
            } else {
                guard SweepParameter.isValue(part) else {
                    throw invalid("invalid_value", "A value of \(name) is longer than \(SweepRun.maxValueBytes) bytes or holds control characters.")
                }
                values.append(part)
            }
        }
        return values
    }

    // MARK: sweep.csv

    static func csv(_ text: String, maxRuns: Int) throws -> SweepPlan {
        var rows = try parseCSV(text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text)
        rows.removeAll { $0.allSatisfy { $0.trimmingCharacters(in: .whitespaces).isEmpty } }
        guard let header = rows.first else {
            throw invalid("empty_csv", "sweep.csv is empty. Its first line names the parameters (cutoff,seed), each further line is one run.")
        }
        var names: [String] = []
        for name in header.map({ $0.trimmingCharacters(in: .whitespaces) }) {
            try checkName(name, names: names, where: "sweep.csv's header")
            names.append(name)
        }
        guard names.count <= SweepRun.maxParameters else {
            throw invalid("too_many_parameters", "sweep.csv names \(names.count) parameters; a sweep may have at most \(SweepRun.maxParameters).")
        }
        let runs = Array(rows.dropFirst())
        guard !runs.isEmpty else { throw invalid("empty_csv", "sweep.csv has a header but no runs; add a line per run below it.") }
        _ = try runCount([runs.count], maxRuns: maxRuns)
        var values: [[String]] = []
        for (offset, row) in runs.enumerated() {
            let line = offset + 2
            guard row.count == names.count else {
                throw invalid("invalid_csv", "Line \(line) of sweep.csv has \(row.count) values; the header names \(names.count).")
            }
            let cells = row.map { $0.trimmingCharacters(in: .whitespaces) }
            for (name, cell) in zip(names, cells) {
                guard !cell.isEmpty else { throw invalid("empty_value", "Line \(line) of sweep.csv gives \(name) no value.") }
                guard SweepParameter.isValue(cell) else {
                    throw invalid("invalid_value", "Line \(line) of sweep.csv: the value of \(name) is longer than \(SweepRun.maxValueBytes) bytes or holds control characters.")
                }
            }
            values.append(cells)
        }
        return SweepPlan(names: names, runs: values)
    }

    /// RFC 4180: commas, double quotes around a field with commas, quotes ("") or line breaks in it, CRLF or LF.
    static func parseCSV(_ text: String) throws -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = "", quoted = false, afterQuote = false
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" { quoted = false; afterQuote = true } else { field.append(character) }
                continue
            }
            switch character {
            case "\"" where field.isEmpty && !afterQuote: quoted = true
            case "\"" where afterQuote: field.append("\""); quoted = true; afterQuote = false
            case ",": row.append(field); field = ""; afterQuote = false
            case "\n", "\r\n", "\r": row.append(field); rows.append(row); row = []; field = ""; afterQuote = false
            default: field.append(character); afterQuote = false
            }
        }
        guard !quoted else { throw invalid("invalid_csv", "sweep.csv has a quote (\") that is never closed.") }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }

    // MARK: Checks

    static func checkName(_ name: String, names: [String], where place: String = "The grid") throws {
        guard !name.isEmpty else { throw invalid("invalid_name", "\(place) has a parameter without a name.") }
        guard SweepParameter.isName(name) else {
            throw invalid(
                "invalid_name",
                "\"\(name.prefix(60))\" in \(place.prefix(1).lowercased() + place.dropFirst()) is not a parameter name: use letters, digits and _, starting with a letter or _ (like cutoff or n_iter), at most 64."
            )
        }
        guard !names.contains(where: { $0.uppercased() == name.uppercased() }) else {
            throw invalid("duplicate_name", "\(name) appears twice in \(place.prefix(1).lowercased() + place.dropFirst()) (names count the same in any case).")
        }
    }

    /// The product of the value counts, refused past `maxRuns` before anything is expanded.
    static func runCount(_ counts: [Int], maxRuns: Int) throws -> Int {
        var total = 1
        for count in counts {
            let (product, overflow) = total.multipliedReportingOverflow(by: count)
            guard !overflow, product <= maxRuns else {
                let shown = overflow ? "more than \(Int.max)" : counts.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }.description
                throw APIError(
                    .unprocessableContent, code: "sweep.too_many_runs",
                    message: "That makes \(shown) runs; this Ferry runs at most \(maxRuns) in one sweep. Use fewer values, or split it into several sweeps.",
                    details: ["runs": shown, "maxRuns": "\(maxRuns)"]
                )
            }
            total = product
        }
        return total
    }
}
