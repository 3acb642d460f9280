import FerryContracts
import Foundation
import Hummingbird

/// The request context of the services without users (Producer, Consumer, ProcessingUnit,
/// Frontend): Hummingbird's basic context with Ferry's JSON date format (FerryDate) both ways.
public struct FerryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var requestDecoder: JSONDecoder { .ferry() }
    public var responseEncoder: JSONEncoder { .ferry() }
}
