import FerryTestSupport
import FerryZip
import Foundation

/// Real project zips, made the ways researchers make them.
enum Bundles {
    /// `name/code.py` (+ other files) zipped as a folder, the usual shape.
    static func folder(_ name: String, files: [String: String], in directory: TemporaryDirectory) throws -> String {
        let source = directory.file("src-\(UUID().uuidString)")
        for (path, text) in files { try write(text, to: source + "/" + name + "/" + path) }
        let zip = directory.file("\(name)-\(UUID().uuidString.prefix(6)).zip")
        try ZipWriter.archive(folder: source, to: zip)
        return zip
    }

    /// The folder's contents zipped directly: code.py at the root.
    static func contents(files: [String: String], in directory: TemporaryDirectory) throws -> String {
        let source = directory.file("src-\(UUID().uuidString)")
        for (path, text) in files { try write(text, to: source + "/" + path) }
        let zip = directory.file("contents-\(UUID().uuidString.prefix(6)).zip")
        try ZipWriter.archive(folder: source, to: zip)
        return zip
    }

    /// What macOS Finder's "Compress" writes: the folder plus `__MACOSX/` resource forks and `.DS_Store`.
    static func finder(_ name: String, code: String, in directory: TemporaryDirectory) throws -> String {
        var zip = RawZipBuilder()
        zip.directory("\(name)/")
        zip.file("\(name)/code.py", code)
        zip.file("\(name)/.DS_Store", "\u{0}\u{0}\u{0}\u{1}Bud1")
        zip.directory("__MACOSX/")
        zip.directory("__MACOSX/\(name)/")
        zip.file("__MACOSX/\(name)/._code.py", "\u{0}\u{5}\u{16}\u{7}Mac OS X")
        let path = directory.file("\(name)-finder.zip")
        try zip.write(to: path)
        return path
    }

    /// requirements.txt as PowerShell's `pip freeze > requirements.txt` writes it: UTF-16 LE with BOM, CRLF.
    static func powershellText(_ lines: [String]) -> String {
        lines.joined(separator: "\r\n") + "\r\n"
    }

    private static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if path.hasSuffix("requirements.txt"), text.contains("\r\n") {
            var data = Data([0xFF, 0xFE])
            data += text.data(using: .utf16LittleEndian)!
            try data.write(to: URL(fileURLWithPath: path))
        } else {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
    }
}
