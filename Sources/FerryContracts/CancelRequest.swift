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

    /// `cancel/sweep-<sweep>-<index>`: a sweep's run at that place was canceled. A unit that made the
    /// sweep a Slurm job array cancels the array's task of a run no unit took (one canceled while it
    /// waited for its turn), which would otherwise stay held in the cluster's queue.
    public static func path(sweepID: String, index: Int, dataDirectory: String) -> String {
        dataDirectory + "/cancel/sweep-\(sweepID)-\(index)"
    }

    public static func isCanceled(sweepID: String, index: Int, dataDirectory: String) -> Bool {
        FileManager.default.fileExists(atPath: path(sweepID: sweepID, index: index, dataDirectory: dataDirectory))
    }

    /// Writes the marker durably (the folder is created when missing).
    public static func write(jobID: String, dataDirectory: String) throws {
        try write(path(jobID: jobID, dataDirectory: dataDirectory), dataDirectory: dataDirectory)
    }

    public static func write(sweepID: String, index: Int, dataDirectory: String) throws {
        try write(path(sweepID: sweepID, index: index, dataDirectory: dataDirectory), dataDirectory: dataDirectory)
    }

    private static func write(_ path: String, dataDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: dataDirectory + "/cancel", withIntermediateDirectories: true)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        fsync(descriptor)
        close(descriptor)
    }
}
