import ArgumentParser
import FerryZip
import Foundation

/// `ferry-zip`: Ferry's zip wrapper from the command line, to inspect a bundle or a result as Ferry sees it.
@main
struct FerryZipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-zip",
        abstract: "List, extract and create zip archives the way Ferry does.",
        subcommands: [ListCommand.self, ExtractCommand.self, CreateCommand.self]
    )
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List entries from the central directory without extracting.")

    @Argument(help: "The archive to list.") var archive: String
    @Option(help: "Refuse an archive that declares more entries, before reading its directory (as the Backend does).") var maxEntries: Int?
    @OptionGroup var statistics: StatisticsOptions

    func run() throws {
        defer { statistics.report() }
        let reader = try ZipReader(path: archive, maxEntries: maxEntries)
        for entry in reader.entries {
            let flags = entry.isEncrypted ? " encrypted" : ""
            print("\(entry.kind)\t\(entry.size)\t\(entry.compressedSize)\t\(entry.compression)\(flags)\t\(entry.name)")
        }
    }
}

struct ExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extract", abstract: "Extract every entry into a folder, with Ferry's path and size checks.")

    @Argument(help: "The archive to extract.") var archive: String
    @Argument(help: "The folder to extract into (created if missing).") var folder: String
    @Option(help: "Refuse more than this many bytes in total.") var maxBytes: UInt64 = 4 << 30
    @Option(help: "Refuse more than this many entries.") var maxEntries: Int = 20_000
    @OptionGroup var statistics: StatisticsOptions

    func run() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let written = try ZipReader(path: archive).extractAll(into: folder, limits: .init(maxEntries: maxEntries, maxTotalBytes: maxBytes))
        print("extracted \(written) bytes into \(folder)")
        statistics.report()
    }
}

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Zip a folder's contents (temporary name, then rename).")

    @Argument(help: "The folder whose contents are zipped.") var folder: String
    @Argument(help: "The archive to write.") var archive: String
    @OptionGroup var statistics: StatisticsOptions

    func run() throws {
        let summary = try ZipWriter.archive(folder: folder, to: archive)
        print("wrote \(archive): \(summary.files) files, \(summary.directories) folders, \(summary.archiveBytes) bytes")
        for skipped in summary.skipped { print("skipped (not a regular file): \(skipped)") }
        statistics.report()
    }
}

struct StatisticsOptions: ParsableArguments {
    @Flag(help: "Print this process's peak memory (resident set high-water mark) when done.")
    var stats = false

    /// VmHWM of this process's own address space: unlike rusage seen by a parent that spawned it
    /// with vfork, it never includes the parent's memory.
    func report() {
        guard stats else { return }
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        let kibibytes = line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        print("peak-memory-bytes: \(kibibytes * 1024)")
    }
}
