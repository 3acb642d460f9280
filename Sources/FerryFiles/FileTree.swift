import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Folders a job wrote, walked and removed the way they must be: never following a symbolic link (a
/// job may point them anywhere), relative to open descriptors (`openat`, `fstatat`, `unlinkat`), so
/// that no path is ever longer than one name and a tree deeper than PATH_MAX is no obstacle, and with
/// names as the bytes they are (a job may write names that are not UTF-8).
public enum FileTree {
    /// One entry met by `walk`.
    public struct Entry {
        /// The names from the walked root down to this entry.
        public var names: [[UInt8]]
        public var info: stat
        /// The open folder that holds the entry, valid only while the visitor runs (for `fchownat` and the like).
        public var parent: Int32
        /// 1 for the root's own entries.
        public var depth: Int { names.count }
        public var isDirectory: Bool { info.st_mode & S_IFMT == S_IFDIR }
        public var isRegularFile: Bool { info.st_mode & S_IFMT == S_IFREG }
        /// The path relative to the root, for people and archives (bytes that are not UTF-8 repaired).
        public var relativePath: String { names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/") }
    }

    /// What the visitor of `walk` wants next.
    public enum Step {
        case next
        /// Do not descend into this folder.
        case skipChildren
        /// End the walk now.
        case stop
    }

    /// Visits every entry below `root` (a folder; a missing root visits nothing), depth first, down to
    /// `maxDepth` levels: folders at that depth are visited but not entered. At most `maxDepth`
    /// descriptors are open at once. Entries that vanish while the walk runs are passed over.
    /// Returns false when the visitor stopped the walk.
    @discardableResult
    public static func walk(_ root: String, maxDepth: Int = .max, _ visit: (Entry) throws -> Step) throws -> Bool {
        let descriptor = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return true }
            throw FileTreeError("cannot open \(root): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        return try walk(descriptor, names: [], maxDepth: maxDepth, visit)
    }

    private static func walk(_ directory: Int32, names: [[UInt8]], maxDepth: Int, _ visit: (Entry) throws -> Step) throws -> Bool {
        for name in try list(directory) {
            var info = stat()
            guard statAt(directory, name, &info) else { continue }
            let entry = Entry(names: names + [name], info: info, parent: directory)
            switch try visit(entry) {
            case .stop: return false
            case .skipChildren: continue
            case .next: break
            }
            guard entry.isDirectory, entry.depth < maxDepth else { continue }
            let child = openFolderAt(directory, name)
            guard child >= 0 else { continue }  // replaced or removed meanwhile
            defer { close(child) }
            guard try walk(child, names: entry.names, maxDepth: maxDepth, visit) else { return false }
        }
        return true
    }

    /// Removes `path` and everything below it, however deep, without following links: one
    /// descriptor at a time, climbing back with `..` and checking it leads where the walk came from.
    /// Call it only once nothing writes into the tree any more (the job's processes are gone).
    /// A missing path is not an error.
    public static func remove(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw FileTreeError("cannot remove \(path): \(String(cString: strerror(errno)))")
        }
        let parentPath = (path as NSString).deletingLastPathComponent
        let parent = open(parentPath.isEmpty ? "." : parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parent >= 0 else { throw FileTreeError("cannot open \(parentPath): \(String(cString: strerror(errno)))") }
        defer { close(parent) }
        let name = Array((path as NSString).lastPathComponent.utf8)
        try removeEntry(name, in: parent)
    }

    /// Removes the entry `name` of the open folder `parent`, a whole tree if it is a folder.
    public static func removeEntry(_ name: [UInt8], in parent: Int32) throws {
        var info = stat()
        guard statAt(parent, name, &info) else {
            if errno == ENOENT { return }
            throw FileTreeError("cannot inspect \(String(decoding: name, as: UTF8.self)): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            try emptyFolder(name, in: parent)
            guard unlinkAt(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                throw FileTreeError("cannot remove the folder \(String(decoding: name, as: UTF8.self)): \(String(cString: strerror(errno)))")
            }
        } else {
            guard unlinkAt(parent, name, 0) == 0 || errno == ENOENT else {
                throw FileTreeError("cannot remove \(String(decoding: name, as: UTF8.self)): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Empties the folder `name` of `parent` iteratively: only the current folder is open, and the
    /// folders still to empty on the way back up are kept as names.
    private static func emptyFolder(_ name: [UInt8], in parent: Int32) throws {
        struct Level {
            var name: [UInt8]
            var identity: FileIdentity
            var folders: [[UInt8]]
        }
        var current = openFolderAt(parent, name)
        guard current >= 0 else { throw FileTreeError("cannot open the folder \(String(decoding: name, as: UTF8.self)): \(String(cString: strerror(errno)))") }
        defer { close(current) }
        var levels = [Level(name: name, identity: try FileIdentity(current), folders: try removeFiles(in: current))]
        while true {
            if let next = levels[levels.count - 1].folders.popLast() {
                let child = openFolderAt(current, next)
                guard child >= 0 else {
                    if errno == ENOENT { continue }
                    if errno == ENOTDIR || errno == ELOOP { _ = unlinkAt(current, next, 0); continue }
                    throw FileTreeError("cannot open a folder to remove it: \(String(cString: strerror(errno)))")
                }
                let level = Level(name: next, identity: try FileIdentity(child), folders: try removeFiles(in: child))
                close(current)
                current = child
                levels.append(level)
                continue
            }
            guard levels.count > 1 else { return }
            let finished = levels.removeLast()
            let up = openFolderAt(current, [0x2E, 0x2E])
            guard up >= 0 else { throw FileTreeError("cannot climb back up while removing: \(String(cString: strerror(errno)))") }
            close(current)
            current = up
            guard try FileIdentity(up) == levels[levels.count - 1].identity else {
                throw FileTreeError("the folder tree changed while it was being removed")
            }
            guard unlinkAt(current, finished.name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                throw FileTreeError("cannot remove a folder: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Unlinks everything in the open folder that is not a folder; returns the names of the folders.
    private static func removeFiles(in directory: Int32) throws -> [[UInt8]] {
        var folders: [[UInt8]] = []
        for name in try list(directory) {
            var info = stat()
            guard statAt(directory, name, &info) else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                folders.append(name)
            } else if unlinkAt(directory, name, 0) != 0 && errno != ENOENT {
                throw FileTreeError("cannot remove a file: \(String(cString: strerror(errno)))")
            }
        }
        return folders
    }

    /// The names in an open folder (not `.` and `..`), read through a duplicate so that the folder stays open.
    public static func list(_ directory: Int32) throws -> [[UInt8]] {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw FileTreeError("cannot list a folder: \(String(cString: strerror(errno)))")
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name != [0x2E] && name != [0x2E, 0x2E] { names.append(name) }
        }
        return names
    }

    /// Opens the folder at `names` below the open folder `root`, refusing a symbolic link at every step.
    public static func openFolder(_ names: [[UInt8]], under root: Int32) throws -> Int32 {
        var current = dup(root)
        guard current >= 0 else { throw FileTreeError("cannot open a folder: \(String(cString: strerror(errno)))") }
        for name in names {
            let next = openFolderAt(current, name)
            let failure = errno
            close(current)
            guard next >= 0 else { throw FileTreeError("cannot open the folder \(String(decoding: name, as: UTF8.self)): \(String(cString: strerror(failure)))") }
            current = next
        }
        return current
    }

    /// Opens the regular file at `names` below the open folder `root` for reading, refusing a
    /// symbolic link or anything but a folder at every step (O_NOFOLLOW all the way down).
    public static func openRegularFile(_ names: [[UInt8]], under root: Int32) throws -> Int32 {
        guard let last = names.last else { throw FileTreeError("no file name") }
        let folder = try openFolder(Array(names.dropLast()), under: root)
        defer { close(folder) }
        let file = withName(last) { openat(folder, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) }
        guard file >= 0 else { throw FileTreeError("cannot open a file: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(file)
            throw FileTreeError("not a regular file")
        }
        return file
    }

    /// Reads at most `maxBytes` of an open file.
    public static func read(_ descriptor: Int32, maxBytes: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: maxBytes)
        var total = 0
        while total < maxBytes {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + total, maxBytes - total) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw FileTreeError("cannot read a file: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            total += count
        }
        return Array(bytes.prefix(total))
    }
}

/// A name as the NUL-terminated C string the system calls take.
func withName<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    (name + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
    }
}

/// `fstatat` without following a link; true when it succeeded.
func statAt(_ directory: Int32, _ name: [UInt8], _ info: inout stat) -> Bool {
    withName(name) { fstatat(directory, $0, &info, AT_SYMLINK_NOFOLLOW) } == 0
}

/// Opens a folder of `directory` by name, never through a link.
func openFolderAt(_ directory: Int32, _ name: [UInt8]) -> Int32 {
    withName(name) { openat(directory, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
}

func unlinkAt(_ directory: Int32, _ name: [UInt8], _ flags: Int32) -> Int32 {
    withName(name) { unlinkat(directory, $0, flags) }
}

/// A file's device and inode: what `..` must lead back to.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init(_ descriptor: Int32) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileTreeError("cannot inspect a folder: \(String(cString: strerror(errno)))") }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// Why a tree could not be walked or removed.
public struct FileTreeError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
