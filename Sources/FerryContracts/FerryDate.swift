import Foundation

/// Ferry's one date format in JSON (messages, the API, manifests): ISO 8601 in UTC with
/// milliseconds, `2026-11-21T09:30:00.125Z`. Whole seconds would make a trivial job's wait and run
/// time zero and order events of the same second arbitrarily. Reading also accepts dates without
/// the fraction, as older messages and other tools write them.
public enum FerryDate {
    public static let encoding = JSONEncoder.DateEncodingStrategy.custom { date, encoder in
        var container = encoder.singleValueContainer()
        try container.encode(date.formatted(withFraction))
    }

    public static let decoding = JSONDecoder.DateDecodingStrategy.custom { decoder in
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        // The style with fractions also reads dates without one.
        if let date = try? withFraction.parse(text) { return date }
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an ISO 8601 date such as 2026-11-21T09:30:00.125Z, got \(text)")
    }

    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

extension JSONEncoder {
    /// A JSON encoder with Ferry's date format.
    public static func ferry(_ formatting: OutputFormatting = []) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = FerryDate.encoding
        encoder.outputFormatting = formatting
        return encoder
    }
}

extension JSONDecoder {
    /// A JSON decoder with Ferry's date format.
    public static func ferry() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = FerryDate.decoding
        return decoder
    }
}
