import FerryContracts
import Foundation
import SQLiteNIO

/// Log-in: accounts, API tokens and browser sessions.
extension JobStore {
    static let userColumns = "users.id, users.username, users.is_admin, users.disabled"

    static func user(_ row: SQLiteRow) -> User? {
        guard let id = row.column("id")?.string, let name = row.column("username")?.string else { return nil }
        return User(id: id, username: name, isAdmin: row.column("is_admin")?.integer == 1, isDisabled: row.column("disabled")?.integer == 1)
    }

    /// Creates a user; nil when the name is taken. Only the operator's setup makes an administrator
    /// (`isAdmin`), never the order of registration.
    func createUser(username: String, passwordHash: String, isAdmin: Bool = false) async throws -> User? {
        let id = UUID().uuidString.lowercased()
        let rows = try await connection.query(
            """
            INSERT INTO users (id, username, password_hash, created_at, is_admin)
            VALUES (?, ?, ?, ?, ?) ON CONFLICT(username) DO NOTHING RETURNING \(Self.userColumns)
            """,
            [.text(id), .text(username), .text(passwordHash), .float(Date().timeIntervalSince1970), .integer(isAdmin ? 1 : 0)]
        )
        return rows.first.flatMap(Self.user)
    }

    func credentials(username: String) async throws -> (User, passwordHash: String)? {
        let rows = try await connection.query("SELECT \(Self.userColumns), password_hash FROM users WHERE username = ?", [.text(username)])
        guard let row = rows.first, let user = Self.user(row), let hash = row.column("password_hash")?.string else { return nil }
        return (user, hash)
    }

    func storeToken(hash: String, user: User, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO tokens (hash, user_id, expires_at) VALUES (?, ?, ?)",
            [.text(hash), .text(user.id), .float(expiresAt.timeIntervalSince1970)]
        )
    }

    /// Revokes every API token of the user.
    func deleteTokens(of user: User) async throws {
        _ = try await connection.query("DELETE FROM tokens WHERE user_id = ?", [.text(user.id)])
    }

    /// The enabled user an unexpired API token belongs to.
    func user(forTokenHash hash: String) async throws -> User? {
        let rows = try await connection.query(
            "SELECT \(Self.userColumns) FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ? AND tokens.expires_at > ? AND users.disabled = 0",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
        return rows.first.flatMap(Self.user)
    }

    func createSession(hash: String, user: User, csrf: String, expiresAt: Date) async throws {
        _ = try await connection.query(
            "INSERT INTO sessions (hash, user_id, csrf, expires_at) VALUES (?, ?, ?, ?)",
            [.text(hash), .text(user.id), .text(csrf), .float(expiresAt.timeIntervalSince1970)]
        )
        // Expired sessions of anyone go when someone logs in; the table stays small without a timer.
        _ = try await connection.query("DELETE FROM sessions WHERE expires_at <= ?", [.float(Date().timeIntervalSince1970)])
    }

    /// The enabled user of an unexpired session and the session's CSRF token.
    func session(hash: String) async throws -> (user: User, csrf: String)? {
        let rows = try await connection.query(
            "SELECT \(Self.userColumns), sessions.csrf FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.hash = ? AND sessions.expires_at > ? AND users.disabled = 0",
            [.text(hash), .float(Date().timeIntervalSince1970)]
        )
        guard let row = rows.first, let user = Self.user(row), let csrf = row.column("csrf")?.string else { return nil }
        return (user, csrf)
    }

    func deleteSession(hash: String) async throws {
        _ = try await connection.query("DELETE FROM sessions WHERE hash = ?", [.text(hash)])
    }

    /// Every account with its number of jobs, for administrators.
    func users() async throws -> [UserSummary] {
        let rows = try await connection.query(
            """
            SELECT \(Self.userColumns), users.created_at, (SELECT COUNT(*) FROM jobs WHERE jobs.owner_id = users.id) AS job_count
            FROM users ORDER BY users.created_at
            """
        )
        return rows.compactMap { row in
            Self.user(row).map {
                UserSummary(id: $0.id, username: $0.username, isAdmin: $0.isAdmin, disabled: $0.isDisabled,
                            createdAt: Date(timeIntervalSince1970: row.column("created_at")?.double ?? 0), jobs: row.column("job_count")?.integer ?? 0)
            }
        }
    }

    /// Disables or enables an account; a disabled account's sessions end at once. Returns whether it exists.
    func setDisabled(_ disabled: Bool, userID: String) async throws -> Bool {
        let rows = try await connection.query("UPDATE users SET disabled = ? WHERE id = ? RETURNING id", [.integer(disabled ? 1 : 0), .text(userID)])
        if disabled { _ = try await connection.query("DELETE FROM sessions WHERE user_id = ?", [.text(userID)]) }
        return !rows.isEmpty
    }
}
