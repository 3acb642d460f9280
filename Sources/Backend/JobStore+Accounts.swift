import Foundation
import SQLiteNIO

/// Accounts beyond log-in: the operator's one-time setup token, invitations, password changes,
/// administrators, and what each user holds (for the per-user limits).
extension JobStore {
    // MARK: The first administrator

    /// Whether any enabled account administers Ferry (by the database or by `auth.admins`).
    func hasAdministrator(ids: Set<String>) async throws -> Bool {
        let rows = try await connection.query("SELECT id FROM users WHERE disabled = 0 AND is_admin = 1 LIMIT 1")
        if !rows.isEmpty { return true }
        guard !ids.isEmpty else { return false }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        return try await !connection.query("SELECT id FROM users WHERE disabled = 0 AND id IN (\(marks)) LIMIT 1", ids.sorted().map(SQLiteData.text)).isEmpty
    }

    /// The hash of the current setup token, if one waits to be used.
    func setupTokenHash() async throws -> String? {
        try await connection.query("SELECT token_hash FROM setup WHERE id = 1").first?.column("token_hash")?.string
    }

    func storeSetupToken(hash: String) async throws {
        _ = try await connection.query(
            "INSERT INTO setup (id, token_hash, created_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
    }

    /// Uses the setup token: true once, for the token that matches, and never again.
    func consumeSetupToken(hash: String) async throws -> Bool {
        try await !connection.query("DELETE FROM setup WHERE id = 1 AND token_hash = ? RETURNING id", [.text(hash)]).isEmpty
    }

    /// Makes an account an administrator or takes that away; returns whether it exists.
    func setAdministrator(_ isAdmin: Bool, userID: String) async throws -> Bool {
        try await !connection.query("UPDATE users SET is_admin = ? WHERE id = ? RETURNING id", [.integer(isAdmin ? 1 : 0), .text(userID)]).isEmpty
    }

    // MARK: Invitations

    struct Invite: Codable, Sendable, Equatable {
        /// The first 12 hex digits of the token's hash: enough to name it, useless to redeem it.
        var id: String
        var createdBy: String?
        var createdAt: Date
        var expiresAt: Date
        var usedBy: String?
    }

    func createInvite(hash: String, by user: User, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO invites (hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [.text(hash), .text(user.id), .float(Date().timeIntervalSince1970), .float(expiresAt.timeIntervalSince1970)]
        )
    }

    func invites() async throws -> [Invite] {
        try await connection.query(
            """
            SELECT invites.hash, creator.username AS created_by, invites.created_at, invites.expires_at, used.username AS used_by
            FROM invites LEFT JOIN users creator ON creator.id = invites.created_by LEFT JOIN users used ON used.id = invites.used_by
            ORDER BY invites.created_at DESC LIMIT 200
            """
        ).compactMap { row in
            guard let hash = row.column("hash")?.string, let created = row.column("created_at")?.double, let expires = row.column("expires_at")?.double else { return nil }
            return Invite(
                id: String(hash.prefix(12)), createdBy: row.column("created_by")?.string, createdAt: Date(timeIntervalSince1970: created),
                expiresAt: Date(timeIntervalSince1970: expires), usedBy: row.column("used_by")?.string
            )
        }
    }

    /// Withdraws an unused invitation by its id (hash prefix); returns whether one went.
    func deleteInvite(id: String) async throws -> Bool {
        guard id.count == 12, id.allSatisfy(\.isHexDigit) else { return false }
        return try await !connection.query("DELETE FROM invites WHERE substr(hash, 1, 12) = ? AND used_by IS NULL RETURNING hash", [.text(id.lowercased())]).isEmpty
    }

    /// Reserves an unused, unexpired invitation for a new account; false when there is none.
    func claimInvite(hash: String) async throws -> Bool {
        try await !connection.query(
            "UPDATE invites SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING hash",
            [.float(Date().timeIntervalSince1970), .text(hash), .float(Date().timeIntervalSince1970)]
        ).isEmpty
    }

    /// Records who used a claimed invitation, or frees it again when the account could not be made.
    func finishInvite(hash: String, user: User?) async throws {
        if let user {
            _ = try await connection.query("UPDATE invites SET used_by = ? WHERE hash = ?", [.text(user.id), .text(hash)])
        } else {
            _ = try await connection.query("UPDATE invites SET used_at = NULL WHERE hash = ? AND used_by IS NULL", [.text(hash)])
        }
    }

    // MARK: Passwords

    /// Ends every other session and every API token of the account, then sets the new password hash
    /// (in that order: a failure half-way leaves the old password with fewer ways in, never the new
    /// password with the old ways). No transaction: the connection is shared by concurrent requests.
    func changePassword(of user: User, to hash: String, keepingSession session: String?) async throws {
        _ = try await connection.query("DELETE FROM tokens WHERE user_id = ?", [.text(user.id)])
        _ = try await connection.query("DELETE FROM sessions WHERE user_id = ? AND hash <> ?", [.text(user.id), .text(session ?? "")])
        _ = try await connection.query("UPDATE users SET password_hash = ? WHERE id = ?", [.text(hash), .text(user.id)])
    }

    func passwordHash(of user: User) async throws -> String? {
        try await connection.query("SELECT password_hash FROM users WHERE id = ?", [.text(user.id)]).first?.column("password_hash")?.string
    }

    // MARK: What a user holds

    struct Holdings: Sendable, Equatable {
        /// Jobs submitted, queued, preparing or running.
        var activeJobs: Int
        /// Jobs submitted in the last minute (uploads and re-runs; a sweep counts once, by its first run).
        var recentSubmissions: Int
        /// Bytes of bundles and results of the user's jobs.
        var storedBytes: Int64
    }

    func holdings(ownerID: String, now: Date = Date()) async throws -> Holdings {
        let row = try await connection.query(
            """
            SELECT
                COALESCE(SUM(CASE WHEN status IN ('submitted', 'queued', 'preparing', 'running') THEN 1 ELSE 0 END), 0) AS active,
                COALESCE(SUM(CASE WHEN submitted_at > ? AND (sweep_id IS NULL OR sweep_index = 1) THEN 1 ELSE 0 END), 0) AS recent,
                COALESCE(SUM(CASE WHEN files_removed_at IS NULL THEN bundle_bytes + COALESCE(result_bytes, 0) ELSE 0 END), 0) AS stored
            FROM jobs WHERE owner_id = ?
            """,
            [.float(now.timeIntervalSince1970 - 60), .text(ownerID)]
        ).first
        return Holdings(
            activeJobs: row?.column("active")?.integer ?? 0, recentSubmissions: row?.column("recent")?.integer ?? 0,
            storedBytes: Int64(row?.column("stored")?.integer ?? 0)
        )
    }

    /// The size of a job's bundle, for a re-run.
    func bundleBytes(of jobID: String) async throws -> Int {
        try await connection.query("SELECT bundle_bytes FROM jobs WHERE id = ?", [.text(jobID)]).first?.column("bundle_bytes")?.integer ?? 0
    }
}
