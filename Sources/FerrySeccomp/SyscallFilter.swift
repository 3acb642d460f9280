import CSeccomp
import Foundation

/// A seccomp filter compiled by libseccomp into the BPF program that bubblewrap loads before it
/// starts a sandboxed program (`bwrap --seccomp FD`). Everything not named by a rule is allowed;
/// each rule makes a system call fail with an error number instead of running. System calls of other
/// architectures (a 32-bit `int 0x80` on x86_64) kill the process, so no rule can be walked around.
public struct SyscallFilter: Sendable {
    /// One refusal: `syscall` fails with `errno`, always or only when its argument matches.
    public struct Rule: Sendable, Equatable {
        public var syscall: String
        public var errno: Int32
        /// When set, the rule applies only if `(argument & mask) == value`.
        public var condition: Condition?

        public struct Condition: Sendable, Equatable {
            public var argument: UInt32
            public var mask: UInt64
            public var value: UInt64
        }

        /// `syscall` always fails with `errno`.
        public static func refuse(_ syscall: String, errno: Int32 = EPERM) -> Rule {
            Rule(syscall: syscall, errno: errno, condition: nil)
        }

        /// `syscall` fails with `errno` when every bit of `flags` is set in its argument `argument`.
        public static func refuse(_ syscall: String, whenArgument argument: UInt32, has flags: UInt64, errno: Int32 = EPERM) -> Rule {
            Rule(syscall: syscall, errno: errno, condition: Condition(argument: argument, mask: flags, value: flags))
        }

        /// `syscall` fails with `errno` when its argument `argument` equals `value` (in its low 32 bits
        /// when `mask` says so, as for ioctl request numbers).
        public static func refuse(_ syscall: String, whenArgument argument: UInt32, is value: UInt64, mask: UInt64 = .max, errno: Int32 = EPERM) -> Rule {
            Rule(syscall: syscall, errno: errno, condition: Condition(argument: argument, mask: mask, value: value))
        }
    }

    public let rules: [Rule]

    public init(rules: [Rule]) {
        self.rules = rules
    }

    /// The BPF program (an array of `struct sock_filter`), as `bwrap --seccomp` reads it. Names this
    /// kernel's architecture does not have are skipped; any other failure throws.
    public func compile() throws -> [UInt8] {
        guard let context = seccomp_init(ferry_scmp_act_allow()) else {
            throw SyscallFilterError("libseccomp could not create a filter")
        }
        defer { seccomp_release(context) }
        // Foreign architectures' system calls end the process instead of passing unfiltered.
        try check(seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, ferry_scmp_act_kill_process()), "set the bad-architecture action")
        for rule in rules {
            let number = seccomp_syscall_resolve_name(rule.syscall)
            guard number >= 0 else { continue }  // not a system call of this architecture
            let action = ferry_scmp_act_errno(UInt16(truncatingIfNeeded: rule.errno))
            if let condition = rule.condition {
                var comparison = ferry_scmp_masked_eq(condition.argument, condition.mask, condition.value)
                try check(seccomp_rule_add_array(context, action, number, 1, &comparison), "add the rule for \(rule.syscall)")
            } else {
                try check(seccomp_rule_add_array(context, action, number, 0, nil), "add the rule for \(rule.syscall)")
            }
        }
        return try export(context)
    }

    private func export(_ context: scmp_filter_ctx) throws -> [UInt8] {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw SyscallFilterError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        defer { close(pipeEnds[0]) }
        let status = seccomp_export_bpf(context, pipeEnds[1])
        close(pipeEnds[1])
        try check(status, "export the filter")
        var program: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(pipeEnds[0], &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw SyscallFilterError("cannot read the exported filter: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            program += buffer[0..<count]
        }
        guard !program.isEmpty, program.count % 8 == 0 else {
            throw SyscallFilterError("libseccomp exported \(program.count) bytes, not a BPF program")
        }
        return program
    }

    private func check(_ status: Int32, _ what: String) throws {
        guard status == 0 else { throw SyscallFilterError("libseccomp could not \(what): \(String(cString: strerror(-status)))") }
    }
}

/// What went wrong while building a seccomp filter.
public struct SyscallFilterError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
