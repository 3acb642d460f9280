import CZip
import FerryFiles
import Foundation

/// A folder kept open while an archive of it is written; every file source opens relative to it.
final class OpenFolder {
    let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }
}

/// One file of a folder being zipped, as a libzip source that opens the file only when libzip reads
/// it (at `zip_close`, one file at a time) and opens it without following a link at any step of its
/// path. libzip owns the retained object from `zip_source_function` until it sends ZIP_SOURCE_FREE.
final class FileSource {
    private let root: OpenFolder
    private let names: [[UInt8]]
    private let size: UInt64
    private let modified: time_t
    private var descriptor: Int32 = -1
    private var failure = zip_error_t()

    init(root: OpenFolder, names: [[UInt8]], info: stat) {
        self.root = root
        self.names = names
        size = UInt64(max(0, info.st_size))
        modified = info.st_mtim.tv_sec
        zip_error_init(&failure)
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        zip_error_fini(&failure)
    }

    static let callback: zip_source_callback = { userData, data, length, command in
        let source = Unmanaged<FileSource>.fromOpaque(userData!)
        if command == ZIP_SOURCE_FREE {
            source.release()
            return 0
        }
        return source.takeUnretainedValue().handle(command, data: data, length: length)
    }

    private static let supported: zip_int64_t = [ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SUPPORTS]
        .reduce(0) { $0 | (zip_int64_t(1) << zip_int64_t($1.rawValue)) }

    private func handle(_ command: zip_source_cmd_t, data: UnsafeMutableRawPointer?, length: zip_uint64_t) -> zip_int64_t {
        switch command {
        case ZIP_SOURCE_OPEN:
            do {
                descriptor = try FileTree.openRegularFile(names, under: root.descriptor)
                return 0
            } catch {
                zip_error_set(&failure, ZIP_ER_OPEN, errno)
                return -1
            }
        case ZIP_SOURCE_READ:
            guard let data else { return 0 }
            while true {
                let count = read(descriptor, data, Int(min(length, 1 << 20)))
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else {
                    zip_error_set(&failure, ZIP_ER_READ, errno)
                    return -1
                }
                return zip_int64_t(count)
            }
        case ZIP_SOURCE_CLOSE:
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            return 0
        case ZIP_SOURCE_STAT:
            guard let data, length >= MemoryLayout<zip_stat_t>.size else { return -1 }
            let stat = data.assumingMemoryBound(to: zip_stat_t.self)
            zip_stat_init(stat)
            stat.pointee.size = size
            stat.pointee.mtime = modified
            stat.pointee.valid |= zip_uint64_t(ZIP_STAT_SIZE) | zip_uint64_t(ZIP_STAT_MTIME)
            return zip_int64_t(MemoryLayout<zip_stat_t>.size)
        case ZIP_SOURCE_ERROR:
            guard let data else { return -1 }
            return zip_error_to_data(&failure, data, length)
        case ZIP_SOURCE_SUPPORTS:
            return Self.supported
        default:
            zip_error_set(&failure, ZIP_ER_OPNOTSUPP, 0)
            return -1
        }
    }
}
