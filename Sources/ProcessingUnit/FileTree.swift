import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Walks folders the way the unit must walk a job's files: never following symbolic links (a job
/// may point them anywhere), each entry given with its lstat.
enum FileTree {
    static func walk(_ path: String, _ body: (String, stat) throws -> Void) rethrows {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        try body(path, info)
        guard info.st_mode & S_IFMT == S_IFDIR, let directory = opendir(path) else { return }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names { try walk(path + "/" + name, body) }
    }
}
