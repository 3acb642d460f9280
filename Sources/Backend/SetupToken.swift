import FerryService
import Foundation
import Logging
import FerryContracts

/// The first administrator comes from the operator, not from whoever registers first: while Ferry
/// has no administrator, the Backend keeps a one-time setup token in a file beside its database
/// (mode 0600, readable only by the account the Backend runs as) and its hash in the database. The
/// operator opens `/setup` and gives the token (scripts/run prints the link); using it creates the
/// administrator's account and the token is gone. The token itself never appears in a log.
enum SetupToken {
    /// Makes sure a token waits when no administrator exists, and none when one does.
    static func prepare(store: JobStore, adminIDs: Set<String>, file: String, logger: Logger) async throws {
        if try await store.hasAdministrator(ids: adminIDs) {
            unlink(file)
            return
        }
        if let existing = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           !existing.isEmpty, try await store.setupTokenHash() == Tokens.hash(existing) {
            logger.notice("Ferry has no administrator yet: open /setup on the web page and give the one-time setup token from \(file)")
            return
        }
        let token = Tokens.generate()
        try write(token, to: file)
        try await store.storeSetupToken(hash: Tokens.hash(token))
        logger.notice("Ferry has no administrator yet: open /setup on the web page and give the one-time setup token from \(file)")
    }

    /// Written to a temporary name (0600) and renamed, so the file is whole or absent.
    private static func write(_ token: String, to file: String) throws {
        let temporary = file + ".new"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ConfigurationError(key: ConfigurationKeys.databasePath, message: "cannot write the setup token beside the database (\(file)): \(String(cString: strerror(errno)))") }
        let bytes = Array((token + "\n").utf8)
        let written = Glibc.write(descriptor, bytes, bytes.count)
        fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, rename(temporary, file) == 0 else {
            throw ConfigurationError(key: ConfigurationKeys.databasePath, message: "cannot write the setup token beside the database (\(file))")
        }
    }
}
