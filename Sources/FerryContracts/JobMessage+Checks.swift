import Foundation

/// A job id as Ferry makes them: a UUID in lowercase, the only form a service turns into a path.
public enum JobID {
    public static func isValid(_ text: String) -> Bool {
        text.count == 36 && UUID(uuidString: text)?.uuidString.lowercased() == text
    }
}

/// The most a job may ask for, the same keys on every service (`limits.time-max`, `limits.memory-max`).
public struct JobLimitMaxima: Sendable, Equatable {
    public var timeSeconds: Int
    public var memoryMiB: Int

    public init(timeSeconds: Int = 86_400, memoryMiB: Int = 16_384) {
        self.timeSeconds = timeSeconds
        self.memoryMiB = memoryMiB
    }
}

/// Why a job message cannot be acted on.
public struct JobMessageProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let message: String

    public var description: String { "\(field): \(message)" }
}

extension JobMessage {
    /// Checks every field before anything is done with the message: the job id is a UUID, the bundle
    /// path is exactly the one derived from it, the owner is an account id, the project name is a
    /// plain name, the limits lie within the operator's maxima, and a sweep run's parameters are names
    /// and plain values (`SweepRun.problem`).
    public func check(within maxima: JobLimitMaxima) throws(JobMessageProblem) {
        guard version == 1 else { throw JobMessageProblem(field: "version", message: "\(version) is not a message version this service knows (1)") }
        guard JobID.isValid(jobID) else { throw JobMessageProblem(field: "jobID", message: "is not a job id (a lowercase UUID)") }
        guard bundlePath == "bundles/\(jobID).zip" else { throw JobMessageProblem(field: "bundlePath", message: "must be bundles/<jobID>.zip") }
        guard JobID.isValid(owner) else { throw JobMessageProblem(field: "owner", message: "is not an account id") }
        guard (1...255).contains(project.utf8.count), !project.contains(where: { $0.isNewline || $0 == "/" || $0 == "\\" || $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) else {
            throw JobMessageProblem(field: "project", message: "must be a name of 1 to 255 bytes without slashes or control characters")
        }
        guard (1...maxima.timeSeconds).contains(limits.timeLimitSeconds) else {
            throw JobMessageProblem(field: "limits.timeLimitSeconds", message: "\(limits.timeLimitSeconds) is outside 1...\(maxima.timeSeconds)")
        }
        guard (1...maxima.memoryMiB).contains(limits.memoryLimitMiB) else {
            throw JobMessageProblem(field: "limits.memoryLimitMiB", message: "\(limits.memoryLimitMiB) is outside 1...\(maxima.memoryMiB)")
        }
        if let problem = sweep?.problem() { throw problem }
    }
}
