import FerryContracts
import FerryService
import Foundation
import Hummingbird
import HTTPTypes
import Logging

/// `/api/v1/admin/*`, for administrators only: the queue, the units and what each runs, every job,
/// and the accounts (disable or enable one).
struct AdminController {
    let store: JobStore
    let control: any BrokerControl
    /// `auth.admins`: account ids shown as administrators like those the database names.
    let adminIDs: Set<String>
    /// Asks a unit (by the address its Consumer reports it under) whether it is healthy: nil when
    /// it is, else what is wrong.
    var probeUnit: @Sendable (String) async -> String? = { _ in nil }
    var volume = VolumeMeter()
    var dataDirectory: String?
    let logger: Logger

    struct Overview: Codable, ResponseEncodable {
        /// Jobs waiting in `ferry.jobs` and the consumers taking them; nil when the broker cannot be asked.
        var queueDepth: Int?
        var queueConsumers: Int?
        var jobsByStatus: [String: Int]
        var units: [UnitSummary]
        /// The shared volume by kind, as last measured (hourly), and what each account keeps.
        var volume: VolumeUsage?
        var storedBytesByUser: [String: Int64]?
    }

    struct Users: Codable, ResponseEncodable {
        var users: [UserSummary]
    }

    struct Invites: Codable, ResponseEncodable {
        var invites: [JobStore.Invite]
    }

    /// A new invitation: the link is shown once, only its hash is kept.
    struct IssuedInvite: Codable, ResponseEncodable {
        var token: String
        var path: String
        var expiresAt: Date
    }

    static let inviteLifetime: TimeInterval = 7 * 24 * 3600

    /// The last measurement by kind, with the free space as it is now.
    private func liveVolume() async -> VolumeUsage {
        var usage = await volume.usage
        if let data = dataDirectory {
            let space = VolumeMeter.space(of: data)
            usage.totalBytes = space.total
            usage.freeBytes = space.free
        }
        return usage
    }

    func register(to router: some RouterMethods<BackendContext>) {
        router.get("/api/v1/admin/overview") { _, context -> Overview in
            _ = try context.requireAdmin()
            var waiting: (messages: Int, consumers: Int)?
            do {
                waiting = try await control.jobsWaiting()
            } catch {
                logger.warning("queue depth unavailable", metadata: ["error": "\(error)"])
            }
            // Each known unit is asked, all at once, so the page names those that are down.
            let known = try await store.units()
            let units = await withTaskGroup(of: UnitSummary.self) { group in
                for unit in known {
                    group.addTask {
                        var unit = unit
                        let name = unit.name
                        guard let url = URLComponents(string: name), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else { return unit }
                        let problem = await HealthCheck.within(.seconds(3)) { await probeUnit(name) }
                        unit.answering = problem == nil
                        unit.problem = problem
                        return unit
                    }
                }
                var all: [UnitSummary] = []
                for await unit in group { all.append(unit) }
                return all.sorted { $0.name < $1.name }
            }
            return Overview(
                queueDepth: waiting?.messages, queueConsumers: waiting?.consumers,
                jobsByStatus: try await store.statusCounts(), units: units,
                volume: await liveVolume(), storedBytesByUser: try await store.storedBytesByUser()
            )
        }
        router.get("/api/v1/admin/jobs") { request, context -> JobPage in
            _ = try context.requireAdmin()
            return try await JobsController.page(request, store: store, ownerID: nil)
        }
        router.get("/api/v1/admin/users") { _, context -> Users in
            _ = try context.requireAdmin()
            return Users(users: try await store.users().map { summary in
                var summary = summary
                summary.isAdmin = summary.isAdmin || adminIDs.contains(summary.id)
                return summary
            })
        }
        /// Invitation links for sign-up (needed with `auth.registration=invite`), valid for a week, once.
        router.post("/api/v1/admin/invites") { _, context -> EditedResponse<IssuedInvite> in
            let admin = try context.requireAdmin()
            let token = Tokens.generate(), expiresAt = Date().addingTimeInterval(Self.inviteLifetime)
            try await store.createInvite(hash: Tokens.hash(token), by: admin, expiresAt: expiresAt)
            logger.notice("invitation created", metadata: ["by": "\(admin.username)"])
            return EditedResponse(status: .created, response: IssuedInvite(token: token, path: "/register?invite=\(token)", expiresAt: expiresAt))
        }
        router.get("/api/v1/admin/invites") { _, context -> Invites in
            _ = try context.requireAdmin()
            return Invites(invites: try await store.invites())
        }
        router.delete("/api/v1/admin/invites/{id}") { _, context -> HTTPResponse.Status in
            _ = try context.requireAdmin()
            guard try await store.deleteInvite(id: try context.parameters.require("id")) else {
                throw APIError(.notFound, code: "invite.not_found", message: "There is no unused invitation with that id.")
            }
            return .noContent
        }
        /// Administrators name more administrators by account, and take that away (never their own).
        for (method, grant) in [(HTTPRequest.Method.post, true), (.delete, false)] {
            router.on(RouterPath("/api/v1/admin/users/{id}/admin"), method: method) { _, context -> HTTPResponse.Status in
                let admin = try context.requireAdmin()
                let id = try context.parameters.require("id")
                guard grant || id != admin.id else {
                    throw APIError(.conflict, code: "admin.self", message: "You cannot take away your own administration; ask another administrator.")
                }
                guard try await store.setAdministrator(grant, userID: id) else {
                    throw APIError(.notFound, code: "user.not_found", message: "There is no user \(id).")
                }
                logger.notice(grant ? "administrator named" : "administrator removed", metadata: ["user.id": "\(id)", "by": "\(admin.username)"])
                return .noContent
            }
        }
        for (action, disabled) in [("disable", true), ("enable", false)] {
            router.post(RouterPath("/api/v1/admin/users/{id}/\(action)")) { _, context -> HTTPResponse.Status in
                let admin = try context.requireAdmin()
                let id = try context.parameters.require("id")
                guard id != admin.id else {
                    throw APIError(.conflict, code: "admin.self", message: "You cannot disable your own account; ask another administrator.")
                }
                guard try await store.setDisabled(disabled, userID: id) else {
                    throw APIError(.notFound, code: "user.not_found", message: "There is no user \(id).")
                }
                logger.notice("account \(action)d", metadata: ["user.id": "\(id)", "by": "\(admin.username)"])
                return .noContent
            }
        }
    }
}
