import FerryContracts
import FerryService
import Foundation

/// The parameters a project declares in `parameters.json` beside code.py: a list of
/// `{"name", "type", "default", "choices", "min", "max", "help"}` (type `int`, `float`, `bool` or
/// `string`, the default). The upload page renders a form from it; the Backend checks every run's
/// values against it and fills in defaults, before anything is stored or run.
struct ParameterDeclarations: Sendable, Equatable {
    enum Kind: String, Sendable, Decodable {
        case int, float, bool, string
    }

    struct Parameter: Sendable, Equatable {
        var name: String
        var kind: Kind
        var defaultValue: String?
        var choices: [String]?
        var minimum: Double?
        var maximum: Double?
    }

    var parameters: [Parameter]

    static func invalid(_ message: String) -> APIError {
        APIError(.unprocessableContent, code: "sweep.invalid_declarations", message: "parameters.json: \(message)")
    }

    /// A JSON scalar as the text a run is given (`8`, `0.5`, `true`, `fast`).
    private enum Scalar: Decodable {
        case text(String)
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let flag = try? container.decode(Bool.self) { self = .text(flag ? "true" : "false"); return }
            if let whole = try? container.decode(Int.self) { self = .text(String(whole)); return }
            if let number = try? container.decode(Double.self) { self = .text(String(number)); return }
            self = .text(try container.decode(String.self))
        }
        var text: String { if case .text(let value) = self { return value }; return "" }
    }

    private struct Declaration: Decodable {
        var name: String
        var type: Kind?
        var `default`: Scalar?
        var choices: [Scalar]?
        var min: Double?
        var max: Double?
        var help: String?
    }

    static func parse(_ text: String) throws -> ParameterDeclarations {
        let declarations: [Declaration]
        do {
            declarations = try JSONDecoder().decode([Declaration].self, from: Data(text.utf8))
        } catch {
            throw invalid("it must be a JSON list of parameters, each like {\"name\": \"cutoff\", \"type\": \"int\", \"default\": 10, \"help\": \"...\"} (type is int, float, bool or string).")
        }
        guard !declarations.isEmpty, declarations.count <= SweepRun.maxParameters else {
            throw invalid("declare 1 to \(SweepRun.maxParameters) parameters.")
        }
        var parameters: [Parameter] = []
        for declaration in declarations {
            try SweepPlan.checkName(declaration.name, names: parameters.map(\.name), where: "parameters.json")
            let parameter = Parameter(
                name: declaration.name, kind: declaration.type ?? .string, defaultValue: declaration.default?.text,
                choices: declaration.choices?.map(\.text), minimum: declaration.min, maximum: declaration.max
            )
            if let value = parameter.defaultValue, let problem = parameter.problem(with: value) {
                throw invalid("the default of \(parameter.name) \(problem).")
            }
            parameters.append(parameter)
        }
        return ParameterDeclarations(parameters: parameters)
    }

    /// The plan with every run checked against the declarations: unknown names refused, missing ones
    /// filled with their defaults (or refused when they have none), every value of its type, among
    /// its choices and within its bounds. Columns come in the declared order.
    func apply(to plan: SweepPlan) throws -> SweepPlan {
        let declared = Set(parameters.map(\.name))
        if let unknown = plan.names.first(where: { !declared.contains($0) }) {
            throw Self.invalid("it declares no parameter \(unknown); the project's parameters are \(parameters.map(\.name).joined(separator: ", ")).")
        }
        var runs: [[String]] = Array(repeating: [], count: plan.runs.count)
        for parameter in parameters {
            let column = plan.names.firstIndex(of: parameter.name)
            guard column != nil || parameter.defaultValue != nil else {
                throw Self.invalid("\(parameter.name) has no default, so it must be given a value (on the upload page, or a grid line like \(parameter.name)=… for /api/v1/sweeps).")
            }
            for (index, run) in plan.runs.enumerated() {
                let value = column.map { run[$0] } ?? parameter.defaultValue!
                if let problem = parameter.problem(with: value) {
                    throw APIError(
                        .unprocessableContent, code: "sweep.invalid_value",
                        message: "\(plan.runs.count > 1 ? "Run \(index + 1): " : "")\(parameter.name)=\(value.prefix(60)) \(problem)."
                    )
                }
                runs[index].append(value)
            }
        }
        return SweepPlan(names: parameters.map(\.name), runs: runs)
    }
}

extension ParameterDeclarations.Parameter {
    /// What is wrong with `value` for this parameter, in words, or nil.
    func problem(with value: String) -> String? {
        switch kind {
        case .int:
            guard let number = Int(value) else { return "is not a whole number" }
            return bounds(Double(number)) ?? choice(value)
        case .float:
            guard let number = Double(value), number.isFinite else { return "is not a number" }
            return bounds(number) ?? choice(value)
        case .bool:
            return value == "true" || value == "false" ? nil : "must be true or false"
        case .string:
            return choice(value)
        }
    }

    private func bounds(_ number: Double) -> String? {
        if let minimum, number < minimum { return "is below its minimum, \(Self.text(minimum))" }
        if let maximum, number > maximum { return "is above its maximum, \(Self.text(maximum))" }
        return nil
    }

    private func choice(_ value: String) -> String? {
        guard let choices, !choices.isEmpty else { return nil }
        // Numbers compare as numbers: a choice 10 admits 10.0 as well.
        let matches = choices.contains { $0 == value || (Double($0) != nil && Double($0) == Double(value)) }
        return matches ? nil : "is not one of its choices (\(choices.joined(separator: ", ")))"
    }

    static func text(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}
