import Foundation

/// The bundle forms Ferry refuses, each with the error code a researcher (or a script) is given:
/// the unit tests hand them to the inspector, the compose stack's tests upload them through its
/// published port.
public enum HostileBundles {
    /// Archives that break a safety rule or hold no runnable project: label, code, how to build it.
    public static let archives: [(label: String, code: String, build: @Sendable (inout RawZipBuilder) -> Void)] = [
        ("absolute path", "bundle.unsafe_path", { $0.file("/etc/cron.d/evil", "x"); $0.file("p/code.py", "") }),
        ("parent folder", "bundle.unsafe_path", { $0.file("../evil.py", "x"); $0.file("p/code.py", "") }),
        ("parent inside a path", "bundle.unsafe_path", { $0.file("p/../../evil.py", "x"); $0.file("p/code.py", "") }),
        ("symbolic link", "bundle.symlink", { $0.file("p/code.py", ""); $0.symlink("p/data", to: "/etc/passwd") }),
        ("named pipe", "bundle.not_regular_file", { $0.file("p/code.py", ""); $0.add(.init(name: "p/fifo", data: [], mode: 0o010644)) }),
        ("device", "bundle.not_regular_file", { $0.file("p/code.py", ""); $0.add(.init(name: "p/disk", data: [], mode: 0o060644)) }),
        ("encrypted entry", "bundle.encrypted", { $0.add(.init(name: "p/code.py", data: Array("print(1)".utf8), encrypted: true)) }),
        ("no code.py", "bundle.missing_code_py", { $0.file("p/main.py", "print(1)") }),
        ("code.py too deep", "bundle.missing_code_py", { $0.file("a/b/code.py", "print(1)") }),
        ("two project folders", "bundle.ambiguous_project", { $0.file("a/code.py", ""); $0.file("b/code.py", "") }),
        ("only litter", "bundle.empty", { $0.file("__MACOSX/._code.py", "x"); $0.file(".DS_Store", "x") }),
        ("megabytes declared in zero bytes", "bundle.suspicious_compression", {
            $0.file("p/code.py", "")
            $0.add(.init(name: "p/data.bin", data: [], declaredSize: 2 << 20))
        }),
    ]

    /// requirements.txt lines that would reach past the operator's package index or the bundle,
    /// each with its code; `withRequirements` puts one on line 3 of a project's requirements.txt.
    public static let requirements: [(text: String, code: String)] = [
        ("--index-url https://evil.example/simple\nnumpy\n", "bundle.requirements_option"),
        ("-i https://evil.example/simple\n", "bundle.requirements_option"),
        ("--extra-index-url https://evil.example/simple\n", "bundle.requirements_option"),
        ("-f https://evil.example/wheels\n", "bundle.requirements_option"),
        ("--find-links /tmp/wheels\n", "bundle.requirements_option"),
        ("--trusted-host evil.example\n", "bundle.requirements_option"),
        ("-e git+https://evil.example/repo.git#egg=x\n", "bundle.requirements_option"),
        ("-r other.txt\n", "bundle.requirements_option"),
        ("-c constraints.txt\n", "bundle.requirements_option"),
        ("https://evil.example/pkg-1.0.tar.gz\n", "bundle.requirements_url"),
        ("git+https://evil.example/repo.git\n", "bundle.requirements_url"),
        ("./local/package\n", "bundle.requirements_path"),
        ("/opt/wheels/pkg.whl\n", "bundle.requirements_path"),
        ("numpy @ file:///home/conda/feedstock_root/build_artifacts/numpy_1700000000/work\n", "bundle.requirements_url"),
        ("pkg @ https://evil.example/pkg.whl\n", "bundle.requirements_url"),
        ("numpy==${NUMPY_VERSION}\n", "bundle.requirements_variable"),
        ("numpy = = 1\n", "bundle.requirements_syntax"),
    ]

    /// Writes the zip `build` makes to a new file and returns its path.
    public static func zip(_ build: (inout RawZipBuilder) -> Void) throws -> String {
        var builder = RawZipBuilder()
        build(&builder)
        let path = NSTemporaryDirectory() + "ferry-hostile-\(UUID().uuidString).zip"
        try builder.write(to: path)
        return path
    }

    /// A project whose requirements.txt is a pinned line, a comment, then `text`.
    public static func withRequirements(_ text: String) throws -> String {
        try zip { $0.file("p/code.py", "print(1)"); $0.file("p/requirements.txt", "# pinned\nrequests==2.31.0\n" + text) }
    }
}
