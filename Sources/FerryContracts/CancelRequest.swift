import Foundation

/// The message on `ferry.control`: the owner canceled a job. Every Consumer passes it to its
/// ProcessingUnit, and the unit that runs the job kills it.
///
/// The message only makes cancellation fast. What makes it certain is the cancel marker the Backend
/// writes first (`cancel/<job>` on the shared volume, `CancelMarker`): a unit checks it before it
/// starts a job and while the job runs, so a canceled job never starts and a lost message only
/// delays the kill.
public struct CancelRequest: Codable, Sendable, Equatable {
    public var jobID: String
    public var at: Date

    public init(jobID: String, at: Date) {
        self.jobID = jobID
        self.at = at
    }
}

/// `$FERRY_DATA_DIR/cancel/<job>`: written by the Backend when a job is canceled (and kept when the
/// job is deleted, as a tombstone for a message still in the queue); read by the units.
public enum CancelMarker {
    public static func path(jobID: String, dataDirectory: String) -> String {
        dataDirectory + "/cancel/" + jobID
    }

    public static func isCanceled(jobID: String, dataDirectory: String) -> Bool {
        FileManager.default.fileExists(atPath: path(jobID: jobID, dataDirectory: dataDirectory))
    }

    /// Writes the marker durably (the folder is created when missing).
    public static func write(jobID: String, dataDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: dataDirectory + "/cancel", withIntermediateDirectories: true)
        let path = path(jobID: jobID, dataDirectory: dataDirectory)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        fsync(descriptor)
        close(descriptor)
    }
}
