import FerryAMQP
import FerryBroker
import FerryContracts
import FerryHTTPClient
import FerryService
import Foundation
import Logging
import ServiceLifecycle

/// Binds an exclusive queue of its own to the `ferry.control` fanout and passes every cancel request
/// to its ProcessingUnit; the unit that runs the job kills it, the others do not know the job (404).
/// A request missed while this Consumer was away is covered by the cancel marker, which units read.
struct CancelRelay: Service {
    let link: BrokerLink
    let unitURL: String
    let token: InternalToken
    let http: HTTPClient
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await relay() }
    }

    private func relay() async {
        // Best effort: a request that cannot be read or passed on is logged and acknowledged (the
        // cancel marker on the volume stops the job anyway).
        var consumer = QueueConsumer(link: link, queue: "\(Topology.controlExchange) (own queue)", prefetch: 16, maxAttempts: nil, deadLettering: .queueArguments, logger: logger)
        consumer.declare = { connection in
            let queue = try await connection.declareQueue("", durable: false, exclusive: true, autoDelete: true)
            try await connection.bindQueue(queue.name, to: Topology.controlExchange)
            return queue.name
        }
        await consumer.run { delivery, _ in
            if let request = try? FerryJSON.decode(CancelRequest.self, from: delivery.body), JobID.isValid(request.jobID) {
                await forward(request)
            } else {
                logger.error("unreadable or invalid cancel request; dropping it")
            }
        }
    }

    private func forward(_ request: CancelRequest) async {
        do {
            try await http.json("POST", unitURL + "/internal/v1/runs/\(request.jobID)/cancel", headers: [token.header], timeout: .seconds(10))
            logger.info("cancel passed to the unit", metadata: [LogKeys.jobID: "\(request.jobID)"])
        } catch let error as HTTPClientError where error.status == 404 {
            // Another unit has the job, or it has not reached this one: its marker stops it.
        } catch {
            logger.warning("cancel request not delivered to the unit; its marker will stop the job", metadata: [LogKeys.jobID: "\(request.jobID)", "error": "\(error)"])
        }
    }
}
