import Configuration
import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryBundle
import FerryService
import Foundation
import Hummingbird
import Logging
import HTTPTypes
import NIOPosix

/// The backend service's default HTTP port (`--http-port`, `FERRY_HTTP_PORT`).
let defaultBackendPort = 8081

/// Builds the backend service from configuration.
func buildBackend(reader: ConfigReader) async throws -> some ApplicationProtocol {
    let logger = try Logger.ferry(service: "backend", reader: reader)
    let http = try HTTPServerSettings(reader: reader, defaultPort: defaultBackendPort)
    guard let data = reader.string(forKey: ConfigKey(ConfigurationKeys.dataDirectory)) else {
        throw ConfigurationError(key: ConfigurationKeys.dataDirectory, message: "is required: the shared volume with bundles, jobs and results")
    }
    var settings = JobSettings(dataDirectory: data)
    settings.maxUploadBytes = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsUploadBytes), default: settings.maxUploadBytes)
    settings.bundleLimits = try BundleLimits(reader: reader)
    settings.defaultTimeLimit = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsTimeDefault), default: settings.defaultTimeLimit)
    settings.maxTimeLimit = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsTimeMax), default: settings.maxTimeLimit)
    settings.defaultMemoryLimit = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsMemoryDefault), default: settings.defaultMemoryLimit)
    settings.maxMemoryLimit = reader.int(forKey: ConfigKey(ConfigurationKeys.limitsMemoryMax), default: settings.maxMemoryLimit)
    try FileManager.default.createDirectory(atPath: settings.bundles, withIntermediateDirectories: true)
    settings.fileThreads = NIOThreadPool(numberOfThreads: reader.int(forKey: ConfigKey(ConfigurationKeys.backendFileThreads), default: 16))
    settings.fileThreads.start()

    // Every setting is read and checked before the database opens: a bad one stops the Backend cleanly.
    let databasePath = reader.string(forKey: ConfigKey(ConfigurationKeys.databasePath), default: data + "/backend/ferry.sqlite")
    let bcryptCost = reader.int(forKey: ConfigKey(ConfigurationKeys.authBcryptCost), default: 12)
    guard (4...31).contains(bcryptCost) else { throw ConfigurationError(key: ConfigurationKeys.authBcryptCost, message: "\(bcryptCost); use 4-31 (12 is a good default)") }
    let producerURL = reader.string(forKey: ConfigKey(ConfigurationKeys.producerURL), default: "http://127.0.0.1:8082")
    let token = try InternalToken(reader: reader)
    let amqpURL = try AMQPURL(reader: reader)
    let adminIDs = Set((reader.string(forKey: ConfigKey(ConfigurationKeys.authAdmins)) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
    if let name = adminIDs.first(where: { !JobID.isValid($0) }) {
        throw ConfigurationError(key: ConfigurationKeys.authAdmins, message: "\(name) is not an account id; administrators are named by id (the admin page shows them), not by user name")
    }
    let registrationName = reader.string(forKey: ConfigKey(ConfigurationKeys.authRegistration), default: Registration.open.rawValue)
    guard let registration = Registration(rawValue: registrationName) else {
        throw ConfigurationError(key: ConfigurationKeys.authRegistration, message: "\(registrationName); use open, closed or invite")
    }
    let trustedProxies = try TrustedProxies(reader.string(forKey: ConfigKey(ConfigurationKeys.backendTrustedProxies), default: "127.0.0.1/8,::1"))
    settings.userLimits = try UserLimits(reader: reader)
    settings.waitNoticeSeconds = TimeInterval(reader.int(forKey: ConfigKey(ConfigurationKeys.backendWaitNoticeSeconds), default: 10))
    settings.retention = try RetentionSettings(reader: reader)
    settings.maxSweepRuns = reader.int(forKey: ConfigKey(ConfigurationKeys.sweepsMaxRuns), default: settings.maxSweepRuns)
    settings.defaultSweepThrottle = reader.int(forKey: ConfigKey(ConfigurationKeys.sweepsDefaultThrottle), default: settings.defaultSweepThrottle)
    guard (1...SweepRun.maxRunIndex).contains(settings.maxSweepRuns) else {
        throw ConfigurationError(key: ConfigurationKeys.sweepsMaxRuns, message: "\(settings.maxSweepRuns); use 1 to \(SweepRun.maxRunIndex)")
    }
    guard settings.defaultSweepThrottle >= 1 else {
        throw ConfigurationError(key: ConfigurationKeys.sweepsDefaultThrottle, message: "\(settings.defaultSweepThrottle); use 1 or more")
    }
    settings.minFreeBytes = Int64(reader.int(forKey: ConfigKey(ConfigurationKeys.unitMinFreeMiB), default: 1024)) << 20
    let setupFile = (databasePath as NSString).deletingLastPathComponent + "/setup-token"
    let store = try await JobStore.open(path: databasePath, logger: logger)
    let queue = ProducerQueue(producerURL: producerURL, token: token, http: HTTPClient(logger: logger))
    let events = EventApplier(
        link: BrokerLink(url: amqpURL, options: try AMQPConnectionOptions(reader: reader, name: "ferry-backend-events"), logger: logger),
        store: store, turns: SweepTurns(store: store, queue: queue, logger: logger), logger: logger
    )
    let control = BrokerLinkControl(link: BrokerLink(url: amqpURL, options: try AMQPConnectionOptions(reader: reader, name: "ferry-backend-control"), logger: logger))
    var auth = AuthSettings(bcryptCost: UInt8(bcryptCost), adminIDs: adminIDs, registration: registration, trustedProxies: trustedProxies)
    auth.setupTokenFile = setupFile
    try await SetupToken.prepare(store: store, adminIDs: adminIDs, file: setupFile, logger: logger)
    let probes = HTTPClient(configuration: .init(maxConcurrentRequests: 8, connectTimeout: .seconds(2), defaultTimeout: .seconds(3)), logger: logger)
    let router = buildBackendRouter(store: store, queue: queue, control: control, settings: settings, auth: auth, probeUnit: { unit in
        do {
            let answer = try await probes.execute(.init(url: unit + "/health", timeout: .seconds(3)))
            return answer.isSuccess ? nil : "its health check answered \(answer.status)"
        } catch {
            return "it does not answer"
        }
    }, logger: logger)
    let sweeper = OutboxSweeper(
        store: store, queue: queue, interval: .seconds(reader.int(forKey: ConfigKey(ConfigurationKeys.backendSweepInterval), default: 5)),
        minimumAge: Double(reader.int(forKey: ConfigKey(ConfigurationKeys.backendSweepAge), default: 10)), logger: logger
    )
    let deadLetters = DeadLetterApplier(
        link: BrokerLink(url: amqpURL, options: try AMQPConnectionOptions(reader: reader, name: "ferry-backend-dead-letters"), logger: logger),
        store: store, logger: logger
    )
    let retention = RetentionSweeper(store: store, dataDirectory: data, settings: settings.retention, meter: settings.volume, logger: logger)
    return buildServiceApplication(service: "backend", router: router, http: http, services: [store, events, deadLetters, sweeper, retention], logger: logger)
}

/// The backend service's routes; its dependencies are parameters so that tests can pass fakes.
func buildBackendRouter(
    store: JobStore, queue: any JobQueue, control: any BrokerControl, settings: JobSettings, auth: AuthSettings,
    probeUnit: @escaping @Sendable (String) async -> String? = { _ in nil }, logger: Logger
) -> Router<BackendContext> {
    let router = Router(context: BackendContext.self)
    router.addMetricsRoute { await BackendMetrics.collect(store: store, control: control) }
    // Ready with the database and the broker; that no unit takes jobs is told, not a failure of the Backend's.
    router.addHealthRoute(service: "backend", checks: [
        .passes("database") { try await store.ping() },
        .passes("broker") { _ = try await control.jobsWaiting() },
    ], notices: [
        HealthCheck("units") { (try? await control.jobsWaiting().consumers) == 0 ? "no processing unit is taking jobs" : nil },
    ])
    router.add(middleware: UserBytesHeaders())
    router.add(middleware: CrossSiteGuard())
    router.add(middleware: Authenticator(store: store, adminIDs: auth.adminIDs, trustedProxies: auth.trustedProxies))
    AuthController(store: store, settings: auth).register(to: router)
    let jobs = JobsController(store: store, queue: queue, control: control, settings: settings, logger: logger)
    jobs.register(to: router)
    SweepsController(jobs: jobs).register(to: router)
    AdminController(store: store, control: control, adminIDs: auth.adminIDs, probeUnit: probeUnit, volume: settings.volume, dataDirectory: settings.dataDirectory, logger: logger).register(to: router)
    WaitingController(
        store: store, control: control, noticeAfter: settings.waitNoticeSeconds, dataDirectory: settings.dataDirectory, minFreeBytes: settings.minFreeBytes, logger: logger
    ).register(to: router)
    return router
}

/// Every API answer may carry a user's bytes (logs, results, manifests, job names): browsers must
/// never sniff one into HTML, run a script from it or frame it.
struct UserBytesHeaders: RouterMiddleware {
    typealias Context = BackendContext

    func handle(_ request: Request, context: BackendContext, next: (Request, BackendContext) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; frame-ancestors 'none'; sandbox"
        response.headers[HTTPField.Name("Cross-Origin-Resource-Policy")!] = "same-origin"
        return response
    }
}
