import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A control group per job, for what rlimits cannot do: a memory limit for the job as a whole (the
/// kernel's OOM killer ends it and says so), a process-count limit, its peak memory, and killing
/// everything in it. Works with cgroup v1 (memory and pids hierarchies) and v2 (unified), under the
/// unit's own cgroup, which the unit must be allowed to write (root, or a delegated cgroup in a
/// container).
struct JobCgroup: Sendable {
    enum Version: Sendable, Equatable {
        /// The unit's folders in the memory and pids hierarchies.
        case v1(memory: String, pids: String)
        /// The folder job cgroups are created in; its subtree_control enables memory and pids.
        case v2(parent: String)
    }

    /// Finds the unit's cgroups and makes sure job cgroups can be created under them; nil with the
    /// reason when they cannot.
    static func detect() -> Result<Version, CgroupError> {
        guard let cgroup = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else {
            return .failure(CgroupError("cannot read /proc/self/cgroup"))
        }
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let found = locate(cgroup: cgroup, mountinfo: mountinfo)
        let mounts = CgroupMount.parse(mountinfo)
        if let memory = found.memory, let pids = found.pids, FileManager.default.fileExists(atPath: memory + "/memory.limit_in_bytes") {
            for controller in ["memory", "pids"] {
                if let mount = mounts.hierarchy(of: controller), let error = makeWritable(mount) { return .failure(error) }
            }
            return probe(.v1(memory: memory, pids: pids))
        }
        if let unified = found.unified, FileManager.default.fileExists(atPath: unified + "/cgroup.controllers") {
            if let mount = mounts.unified, let error = makeWritable(mount) { return .failure(error) }
            return enableV2(parent: unified)
        }
        return .failure(CgroupError("no writable memory and pids cgroup controllers were found"))
    }

    /// The folders of the unit's own cgroups: in the v1 memory and pids hierarchies, and in the
    /// unified (v2) one. `/proc/self/cgroup` names each group from its hierarchy's root, but a
    /// hierarchy may be mounted from deeper down: inside a container on cgroup v1 the mount's root
    /// already is the container's own group (`/docker/<id>`), so the group's folder is the mount
    /// point itself, not the mount point with the path appended. `/proc/self/mountinfo` says which
    /// part of the hierarchy each mount shows.
    static func locate(cgroup: String, mountinfo: String) -> (memory: String?, pids: String?, unified: String?) {
        var v1: [String: String] = [:]
        var unified: String?
        for line in cgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty { unified = parts[2] }
            for controller in parts[1].split(separator: ",") { v1[String(controller)] = parts[2] }
        }
        let mounts = CgroupMount.parse(mountinfo)
        func folder(_ path: String?, in mount: CgroupMount?, fallback: String) -> String? {
            guard let path else { return nil }
            guard let mount else { return fallback + (path == "/" ? "" : path) }
            return mount.folder(of: path)
        }
        return (
            folder(v1["memory"], in: mounts.hierarchy(of: "memory"), fallback: "/sys/fs/cgroup/memory"),
            folder(v1["pids"], in: mounts.hierarchy(of: "pids"), fallback: "/sys/fs/cgroup/pids"),
            folder(unified, in: mounts.unified, fallback: "/sys/fs/cgroup")
        )
    }

    /// A container that is not privileged gets its cgroups mounted read-only. A unit given
    /// CAP_SYS_ADMIN (compose's `cap_add`) makes that mount writable, in its own mount namespace
    /// only (the host's and other containers' mounts stay as they are), before it creates any
    /// job's group; without the capability it says what to give it.
    static func makeWritable(_ mount: CgroupMount) -> CgroupError? {
        guard mount.readOnly else { return nil }
        let flags = UInt(MS_REMOUNT) | UInt(MS_BIND) | UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
        guard Glibc.mount("none", mount.mountPoint, nil, flags, nil) == 0 else {
            return CgroupError(
                "\(mount.mountPoint) is mounted read-only and cannot be made writable (\(String(cString: strerror(errno)))); in a container, give the unit CAP_SYS_ADMIN (compose: cap_add SYS_ADMIN, as docker-compose.yml does) or run it privileged"
            )
        }
        return nil
    }

    /// cgroup v2 allows controllers for child groups only when the parent holds no processes itself,
    /// so the unit first moves into a child group of its own, and so does the init that started it
    /// in a container (tini, PID 1 there, which reaps what killed jobs leave behind).
    private static func enableV2(parent: String) -> Result<Version, CgroupError> {
        let control = parent + "/cgroup.subtree_control"
        let enabled = (try? String(contentsOfFile: control, encoding: .utf8)) ?? ""
        if enabled.contains("memory") && enabled.contains("pids") {
            return probe(.v2(parent: parent))
        }
        let own = parent + "/ferry-unit"
        do {
            try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: true)
            let ownGroup = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
            let initShares = getppid() == 1 && (try? String(contentsOfFile: "/proc/1/cgroup", encoding: .utf8)) == ownGroup
            try write("\(getpid())", to: own + "/cgroup.procs")
            if initShares { try write("1", to: own + "/cgroup.procs") }
            // A process that joins the parent meanwhile (a health check's) is gone a moment later.
            for attempt in 1...50 {
                do {
                    try write("+memory +pids", to: control)
                    break
                } catch where attempt < 50 {
                    usleep(100_000)
                }
            }
        } catch {
            return .failure(CgroupError("cannot enable the memory and pids controllers in \(parent): \(error)"))
        }
        return probe(.v2(parent: parent))
    }

    /// Creates and removes a test group, so that a unit that cannot limit jobs fails at start.
    private static func probe(_ version: Version) -> Result<Version, CgroupError> {
        do {
            let group = try JobCgroup(version: version, name: "ferry-probe-\(UUID().uuidString.lowercased())", memoryBytes: 64 << 20, processes: 16)
            group.remove()
            return .success(version)
        } catch {
            return .failure(CgroupError("cannot create a job cgroup: \(error)"))
        }
    }

    let version: Version
    let folders: [String]

    /// Creates the job's group with its limits. Swap is limited too where the kernel accounts it.
    init(version: Version, name: String, memoryBytes: UInt64, processes: Int) throws {
        self.version = version
        switch version {
        case .v1(let memory, let pids):
            folders = [memory + "/" + name, pids + "/" + name]
            for folder in folders { try Self.makeFolder(folder) }
            try Self.write("\(memoryBytes)", to: folders[0] + "/memory.limit_in_bytes")
            if FileManager.default.fileExists(atPath: folders[0] + "/memory.memsw.limit_in_bytes") {
                try? Self.write("\(memoryBytes)", to: folders[0] + "/memory.memsw.limit_in_bytes")
            }
            try Self.write("\(processes)", to: folders[1] + "/pids.max")
        case .v2(let parent):
            folders = [parent + "/" + name]
            try Self.makeFolder(folders[0])
            try Self.write("\(memoryBytes)", to: folders[0] + "/memory.max")
            try? Self.write("0", to: folders[0] + "/memory.swap.max")
            try Self.write("\(processes)", to: folders[0] + "/pids.max")
        }
    }

    /// The files a process writes its pid to, to join the group (the job's launcher does this
    /// before it starts anything of the job's).
    var processFiles: [String] { folders.map { $0 + "/cgroup.procs" } }

    /// Whether the kernel's OOM killer ended a process of the job.
    var oomKilled: Bool {
        let file = switch version {
        case .v1: folders[0] + "/memory.oom_control"
        case .v2: folders[0] + "/memory.events"
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { line in
            let parts = line.split(separator: " ")
            return parts.count == 2 && parts[0] == "oom_kill" && (Int(parts[1]) ?? 0) > 0
        }
    }

    /// The job's peak memory in bytes, where the kernel records it.
    var peakBytes: UInt64? {
        let file = switch version {
        case .v1: folders[0] + "/memory.max_usage_in_bytes"
        case .v2: folders[0] + "/memory.peak"
        }
        return (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Kills every process in the group (until none is left) and removes the group.
    func killAllAndRemove() {
        killAll()
        remove()
    }

    /// Kills every process in the group, until none is left (a process may fork while it is killed).
    func killAll() {
        // cgroup v2 kills a whole group at once, forks included (Linux 5.14 and later).
        if case .v2 = version { try? Self.write("1", to: folders[0] + "/cgroup.kill") }
        for _ in 0..<100 {
            let pids = processFiles.flatMap { file in
                ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { pid_t($0) }
            }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(10_000)
        }
    }

    func remove() {
        for folder in folders { rmdir(folder) }
    }

    private static func makeFolder(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw CgroupError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ value: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CgroupError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(value.utf8)
        guard Glibc.write(descriptor, bytes, bytes.count) == bytes.count else {
            throw CgroupError("cannot write \(value) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}

struct CgroupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A cgroup file system as `/proc/self/mountinfo` lists it: which part of its hierarchy (`root`) is
/// mounted where (`mountPoint`), and the v1 controllers it carries.
struct CgroupMount: Equatable {
    var root: String
    var mountPoint: String
    var controllers: [String]
    var isUnified: Bool
    /// Mounted read-only (the mount's own options), as Docker mounts a container's cgroups unless
    /// it is privileged.
    var readOnly = false

    /// The cgroup mounts in a mountinfo text (`ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...]
    /// - FSTYPE SOURCE SUPER-OPTIONS`); the v1 controllers are among the super options.
    static func parse(_ mountinfo: String) -> [CgroupMount] {
        mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard let dash = fields.firstIndex(of: "-"), dash >= 5, fields.count >= dash + 3 else { return nil }
            let type = fields[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { return nil }
            let options = fields[dash + 3].split(separator: ",").map(String.init)
            return CgroupMount(
                root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                controllers: type == "cgroup" ? options : [], isUnified: type == "cgroup2",
                readOnly: fields[5].split(separator: ",").contains("ro")
            )
        }
    }

    /// The folder of the group at `path` (from the hierarchy's root) under this mount; a group outside
    /// the mounted part is not reachable through it.
    func folder(of path: String) -> String? {
        if root == "/" { return mountPoint + (path == "/" ? "" : path) }
        if path == root { return mountPoint }
        guard path.hasPrefix(root + "/") else { return nil }
        return mountPoint + path.dropFirst(root.count)
    }

    /// mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\040`).
    private static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var result = ""
        var rest = Substring(field)
        while let slash = rest.firstIndex(of: "\\") {
            result += rest[..<slash]
            let digits = rest[rest.index(after: slash)...].prefix(3)
            if digits.count == 3, let code = UInt8(digits, radix: 8) {
                result.append(Character(UnicodeScalar(code)))
                rest = rest[rest.index(slash, offsetBy: 4)...]
            } else {
                result.append("\\")
                rest = rest[rest.index(after: slash)...]
            }
        }
        return result + rest
    }
}

extension [CgroupMount] {
    /// The mount of the v1 hierarchy that carries `controller`: where the unit's groups are found
    /// and, when it is read-only, what the unit makes writable.
    func hierarchy(of controller: String) -> CgroupMount? { first { $0.controllers.contains(controller) } }

    /// The mount of the unified (v2) hierarchy.
    var unified: CgroupMount? { first(where: \.isUnified) }
}
