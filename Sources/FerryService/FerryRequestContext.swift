import FerryContracts
import Foundation
import Hummingbird

/// The request context of the services without users (Producer, Consumer, ProcessingUnit,
/// Frontend): Hummingbird's basic context with Ferry's JSON date format (FerryDate) both ways.
public struct FerryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's peer address, without the port.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }

    public var requestDecoder: FerryJSONRequestDecoder { FerryJSONRequestDecoder() }
    public var responseEncoder: JSONEncoder { .ferry() }
}
