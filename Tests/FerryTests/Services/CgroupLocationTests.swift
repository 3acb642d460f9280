@testable import ProcessingUnit
import Testing

/// Where the unit finds its own cgroups, from `/proc/self/cgroup` and `/proc/self/mountinfo` as the
/// kernel writes them on a host and inside a container, on cgroup v1 and v2.
@Suite("Cgroup location")
struct CgroupLocationTests {
    /// This kind of test machine: hybrid v1, the hierarchies mounted from their roots.
    @Test func onAV1HostTheGroupIsUnderTheHierarchysMount() {
        let cgroup = """
            12:pids:/user.slice/user-0.slice/session-1.scope
            7:memory:/user.slice/user-0.slice/session-1.scope
            1:name=systemd:/user.slice/user-0.slice/session-1.scope
            0::/user.slice/user-0.slice/session-1.scope
            """
        let mountinfo = """
            25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
            30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
            31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
            36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
            40 30 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,pids
            """
        let found = JobCgroup.locate(cgroup: cgroup, mountinfo: mountinfo)
        #expect(found.memory == "/sys/fs/cgroup/memory/user.slice/user-0.slice/session-1.scope")
        #expect(found.pids == "/sys/fs/cgroup/pids/user.slice/user-0.slice/session-1.scope")
        #expect(found.unified == "/sys/fs/cgroup/unified/user.slice/user-0.slice/session-1.scope")
    }

    /// Docker on cgroup v1 mounts each hierarchy from the container's own group: the path in
    /// /proc/self/cgroup must not be appended to the mount point a second time (the units of the
    /// compose stack failed their start-up check because of it).
    @Test func inAV1ContainerTheMountAlreadyIsTheContainersGroup() {
        let id = "3f6c1b0e9a7d"
        let cgroup = """
            12:pids:/docker/\(id)
            7:memory:/docker/\(id)
            1:name=systemd:/docker/\(id)
            0::/docker/\(id)
            """
        let mountinfo = """
            600 500 0:60 / / rw,relatime master:200 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
            610 600 0:64 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
            615 610 0:31 /docker/\(id) /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory
            619 610 0:35 /docker/\(id) /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime master:19 - cgroup cgroup rw,pids
            620 610 0:27 /docker/\(id) /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
            """
        let found = JobCgroup.locate(cgroup: cgroup, mountinfo: mountinfo)
        #expect(found.memory == "/sys/fs/cgroup/memory")
        #expect(found.pids == "/sys/fs/cgroup/pids")
        #expect(found.unified == "/sys/fs/cgroup/unified")
    }

    /// A job group the unit made below its own is found below the mount, whatever the mount's root.
    @Test func aGroupBelowTheMountedOneIsFoundBelowTheMountPoint() {
        let mount = CgroupMount(root: "/docker/abc", mountPoint: "/sys/fs/cgroup/memory", controllers: ["rw", "memory"], isUnified: false)
        #expect(mount.folder(of: "/docker/abc/ferry-unit") == "/sys/fs/cgroup/memory/ferry-unit")
        #expect(mount.folder(of: "/docker/abcdef") == nil, "a sibling group whose name only starts alike is not under the mount")
        #expect(mount.folder(of: "/other") == nil)
    }

    /// cgroup v2 only (current Debian, Ubuntu, RHEL): on the host the unified hierarchy at
    /// /sys/fs/cgroup; in a container with its own cgroup namespace, its group is the root.
    @Test func onCgroupV2TheUnifiedHierarchyIsUsed() {
        let host = JobCgroup.locate(
            cgroup: "0::/system.slice/ferry-unit.service\n",
            mountinfo: "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
        )
        #expect(host.unified == "/sys/fs/cgroup/system.slice/ferry-unit.service")
        #expect(host.memory == nil && host.pids == nil)

        let container = JobCgroup.locate(
            cgroup: "0::/\n",
            mountinfo: "700 690 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n"
        )
        #expect(container.unified == "/sys/fs/cgroup")
    }

    /// Without mountinfo (an unusual /proc), the usual mount points are assumed, as before.
    @Test func withoutMountinfoTheUsualMountPointsAreAssumed() {
        let found = JobCgroup.locate(cgroup: "7:memory:/a\n12:pids:/a\n0::/a\n", mountinfo: "")
        #expect(found.memory == "/sys/fs/cgroup/memory/a")
        #expect(found.pids == "/sys/fs/cgroup/pids/a")
        #expect(found.unified == "/sys/fs/cgroup/a")
    }

    /// A container that is not privileged sees its cgroups mounted read-only (the mount's options,
    /// not the file system's); the unit makes those writable before it creates a job's group.
    @Test func aReadOnlyCgroupMountIsToldApart() {
        let mounts = CgroupMount.parse("""
            615 610 0:31 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory
            619 610 0:35 /docker/abc /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime master:19 - cgroup cgroup rw,pids
            700 690 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
            """)
        #expect(mounts.map(\.readOnly) == [true, false, true])
        #expect(JobCgroup.makeWritable(mounts[1]) == nil, "a writable mount is left as it is")
    }

    @Test func escapedMountPointsAreRead() {
        let mounts = CgroupMount.parse(#"36 30 0:32 / /sys/fs/cgroup/my\040memory rw - cgroup cgroup rw,memory"#)
        #expect(mounts == [CgroupMount(root: "/", mountPoint: "/sys/fs/cgroup/my memory", controllers: ["rw", "memory"], isUnified: false)])
    }
}
