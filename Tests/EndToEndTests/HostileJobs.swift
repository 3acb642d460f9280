import Foundation

/// The safety suite's hostile `code.py` programs and what they report, shared by the stack of
/// processes (SandboxTests) and the compose stack (ComposeStackTests), so both are tried alike.
enum HostileJobs {
    /// Tries a TCP connection to each target and writes `output/network.json`: name → "reached" or
    /// the error's type.
    static func networkProbe(_ targets: [String: (host: String, port: Int)]) -> String {
        let table = targets.sorted { $0.key < $1.key }.map { "\"\($0.key)\": (\"\($0.value.host)\", \($0.value.port))" }.joined(separator: ", ")
        return """
            import json, socket
            results = {}
            for name, (host, port) in {\(table)}.items():
                try:
                    socket.create_connection((host, port), timeout=2).close()
                    results[name] = "reached"
                except OSError as error:
                    results[name] = type(error).__name__
            json.dump(results, open("output/network.json", "w"))
            """
    }

    /// Walks the whole file system it sees and writes `output/view.json` (`View`): its ids, every file
    /// outside /usr, those holding `marker`, the processes it sees and the root folder's names.
    static func snoop(for marker: String) -> String {
        // The marker is split so that this program itself does not hold it.
        let half = marker.count / 2
        return """
            import json, os
            seen = []
            for folder, folders, files in os.walk("/"):
                folders[:] = [f for f in folders if os.path.join(folder, f) not in ("/proc", "/sys", "/dev")]
                seen += [os.path.join(folder, f) for f in files]
            leaks = []
            for path in seen:
                if path.startswith("/usr/"): continue
                try: text = open(path, errors="replace").read(1000000)
                except OSError: continue
                if "\(marker.prefix(half))" + "\(marker.dropFirst(half))" in text: leaks.append(path)
            json.dump({"uid": os.getuid(), "gid": os.getgid(), "files": [p for p in seen if not p.startswith("/usr/")],
                       "leaks": leaks, "pids": [p for p in os.listdir("/proc") if p.isdigit()],
                       "root": sorted(os.listdir("/"))}, open("output/view.json", "w"))
            """
    }

    struct View: Decodable { var uid: UInt32; var gid: UInt32; var files: [String]; var leaks: [String]; var pids: [String]; var root: [String] }

    /// What a job's root folder holds: the system's read-only folders, its own work folder and /tmp.
    static let rootFolder = ["bin", "dev", "etc", "job", "lib", "lib64", "proc", "sbin", "tmp", "usr"]

    /// Calls the kernel's riskier system calls through ctypes (so that the errno is the kernel's or the
    /// filter's answer) and checks that threads and processes still work; writes `output/calls.json`.
    static let kernelCalls = """
        import ctypes, json, os, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def attempt(call):
            ctypes.set_errno(0)
            result = call()
            return 0 if result >= 0 else ctypes.get_errno()
        calls = {
            "unshare(CLONE_NEWUSER)": lambda: libc.unshare(0x10000000),
            "unshare(CLONE_NEWNS)": lambda: libc.unshare(0x00020000),
            "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0, 0),
            "add_key": lambda: libc.syscall(248, b"user", b"ferry", b"x", 1, -2),
            "bpf": lambda: libc.syscall(321, 0, 0, 0),
            "userfaultfd": lambda: libc.syscall(323, 0),
            "perf_event_open": lambda: libc.syscall(298, 0, 0, -1, -1, 0),
            "ptrace(PTRACE_TRACEME)": lambda: libc.ptrace(0, 0, 0, 0),
            "io_uring_setup": lambda: libc.syscall(425, 1, 0),
            "clone(CLONE_NEWUSER)": lambda: libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0),
        }
        errors = {name: attempt(call) for name, call in calls.items()}
        # What a job needs still works: threads and processes.
        thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
        pid = os.fork()
        if pid == 0: os._exit(7)
        forked = os.waitpid(pid, 0)[1] >> 8
        json.dump({"errors": errors, "forked": forked, "fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))},
                  open("output/calls.json", "w"))
        """

    struct Calls: Decodable { var errors: [String: Int32]; var forked: Int; var fds: [Int] }

    static let endlessLoop = "import subprocess\nsubprocess.Popen(['sleep', '600'])\nwhile True:\n    pass\n"
    static let memoryHog = "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n"
    static let forkBomb = "import os\nwhile True:\n    os.fork()\n"
    static let diskFiller = "import os\nos.makedirs('output/many', exist_ok=True)\nfor i in range(100000):\n    open(f'output/many/{i}.bin', 'wb').write(b'x' * (1 << 20))\n"
}
