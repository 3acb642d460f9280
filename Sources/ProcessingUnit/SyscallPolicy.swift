import FerrySeccomp
import Foundation

/// The system calls a sandboxed job (and an environment build) may not make, in the spirit of
/// Docker's default seccomp profile: what a Python analysis has no use for and what local-root
/// exploits reach for. Each fails with EPERM (clone3 with ENOSYS, so that the C library falls back to
/// clone, whose flags the filter can see); the job goes on and sees an ordinary error.
enum SyscallPolicy {
    /// Namespace flags of clone(2): a job may start processes and threads, never new namespaces.
    static let namespaceFlags: [UInt64] = [
        0x0002_0000,  // CLONE_NEWNS
        0x0200_0000,  // CLONE_NEWCGROUP
        0x0400_0000,  // CLONE_NEWUTS
        0x0800_0000,  // CLONE_NEWIPC
        0x1000_0000,  // CLONE_NEWUSER
        0x2000_0000,  // CLONE_NEWPID
        0x4000_0000,  // CLONE_NEWNET
        0x0000_0080,  // CLONE_NEWTIME
    ]

    static let refused: [String] = [
        // New namespaces and mounts: the way into kernel code that only root should reach.
        "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "mount_setattr",
        "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
        // The kernel keyring, BPF, userfaultfd, perf: the usual footholds of local privilege escalation.
        "keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open",
        // io_uring bypasses this filter for the operations it carries.
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        // Other processes' memory and file handles.
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
        "open_by_handle_at", "name_to_handle_at",
        // The machine itself: modules, kexec, swap, clocks, accounting, quotas, reboot, raw I/O.
        "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
        "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
        "settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex", "syslog",
        "iopl", "ioperm", "vm86", "vm86old", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
        "lookup_dcookie", "vhangup", "sethostname", "setdomainname", "fanotify_init",
    ]

    static var rules: [SyscallFilter.Rule] {
        refused.map { SyscallFilter.Rule.refuse($0) }
            + namespaceFlags.map { .refuse("clone", whenArgument: 0, has: $0) }
            + [
                .refuse("clone3", errno: ENOSYS),
                // Typing into another terminal's input queue.
                .refuse("ioctl", whenArgument: 1, is: 0x5412, mask: 0xFFFF_FFFF),  // TIOCSTI
                .refuse("ioctl", whenArgument: 1, is: 0x541C, mask: 0xFFFF_FFFF),  // TIOCLINUX
                // vsock is not inside the network namespace: it reaches the host or hypervisor.
                .refuse("socket", whenArgument: 0, is: 40),  // AF_VSOCK
            ]
    }

    /// The compiled filter; it is the same for every job, so it is built once when the unit starts.
    static func compile() throws -> [UInt8] {
        try SyscallFilter(rules: rules).compile()
    }
}
