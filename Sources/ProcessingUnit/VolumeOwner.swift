import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who owns the shared volume (the data folder): the Backend's user in compose (uid 10001), the
/// operator's account with `scripts/run`. The unit runs as root, and the folders it makes on the
/// volume (`jobs/`, `results/`, `jobs/<job>/`) are handed to that owner, so that the Backend can
/// remove a deleted or expired job's logs and result: removing a file needs write access to its
/// folder, not to the file, so the files themselves stay the unit's.
struct VolumeOwner: Sendable, Equatable {
    var uid: uid_t
    var gid: gid_t

    /// The owner of `dataDirectory`; nil when there is nothing to hand over (the unit is not root,
    /// or owns the volume itself).
    static func of(_ dataDirectory: String) -> VolumeOwner? {
        var info = stat()
        guard geteuid() == 0, stat(dataDirectory, &info) == 0, info.st_uid != geteuid() else { return nil }
        return VolumeOwner(uid: info.st_uid, gid: info.st_gid)
    }

    /// Hands a folder the unit made to the owner, unless someone else owns it already (a folder the
    /// operator made keeps its owner). Links are not followed.
    func adopt(_ folder: String) throws {
        var info = stat()
        guard lstat(folder, &info) == 0 else { throw VolumeOwnerError(folder: folder, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid(), info.st_uid != uid || info.st_gid != gid else { return }
        guard lchown(folder, uid, gid) == 0 else { throw VolumeOwnerError(folder: folder, errno: errno) }
    }
}

struct VolumeOwnerError: Error, CustomStringConvertible {
    var folder: String
    var errno: Int32
    var description: String { "cannot hand \(folder) to the shared volume's owner: \(String(cString: strerror(errno)))" }
}
