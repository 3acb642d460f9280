import FerryContracts
import FerryService
import Foundation
import Hummingbird
import Logging

/// `/api/v1/admin/*`, for administrators only: the queue, the units and what each runs, every job,
/// and the accounts (disable or enable one).
struct AdminController {
    let store: JobStore
    let control: any BrokerControl
    /// `auth.admins`: shown as administrators like the first account.
    let admins: Set<String>
    let logger: Logger

    struct Overview: Codable, ResponseEncodable {
        /// Jobs waiting in `ferry.jobs` and the consumers taking them; nil when the broker cannot be asked.
        var queueDepth: Int?
        var queueConsumers: Int?
        var jobsByStatus: [String: Int]
        var units: [UnitSummary]
    }

    struct Users: Codable, ResponseEncodable {
        var users: [UserSummary]
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
            return Overview(
                queueDepth: waiting?.messages, queueConsumers: waiting?.consumers,
                jobsByStatus: try await store.statusCounts(), units: try await store.units()
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
                summary.isAdmin = summary.isAdmin || admins.contains(summary.username.lowercased())
                return summary
            })
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
