import Configuration
import FerryService
import Foundation
import HTTPTypes
import Hummingbird
import FerryContracts

/// The proxies whose `X-Forwarded-For` the Backend believes: the Frontend (on 127.0.0.1 under
/// scripts/run, on the compose network in containers) and any TLS proxy in front of it.
struct TrustedProxies: Sendable, Equatable {
    /// IPv4 networks as (address, prefix length); IPv6 addresses as written.
    private var networks: [(UInt32, Int)] = []
    private var exact: Set<String> = []

    static let loopback = try! TrustedProxies("127.0.0.1/8,::1")

    init(_ list: String) throws {
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            if let address = Self.ipv4(parts[0]) {
                let prefix = parts.count == 2 ? Int(parts[1]) : 32
                guard let prefix, (0...32).contains(prefix) else { throw ConfigurationError(key: ConfigurationKeys.backendTrustedProxies, message: "\(entry) is not an IPv4 network; write 10.0.0.0/8") }
                networks.append((address, prefix))
            } else if parts.count == 1, entry.contains(":") {
                exact.insert(entry.lowercased())
            } else {
                throw ConfigurationError(key: ConfigurationKeys.backendTrustedProxies, message: "\(entry) is not an address or IPv4 network")
            }
        }
    }

    static func == (lhs: TrustedProxies, rhs: TrustedProxies) -> Bool {
        lhs.exact == rhs.exact && lhs.networks.map(\.0) == rhs.networks.map(\.0) && lhs.networks.map(\.1) == rhs.networks.map(\.1)
    }

    func contains(_ address: String) -> Bool {
        if let value = Self.ipv4(address) {
            return networks.contains { network, prefix in
                let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
                return value & mask == network & mask
            }
        }
        return exact.contains(address.lowercased())
    }

    private static func ipv4(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false).map { UInt32($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 != nil && $0! < 256 }) else { return nil }
        return octets.reduce(0) { $0 << 8 | $1! }
    }

    /// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
    /// right-most address of `X-Forwarded-For` that is not one (each proxy appends its own peer).
    func client(of request: Request, peer: String?) -> String? {
        guard let peer else { return nil }
        guard contains(peer), let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] else { return peer }
        let chain = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return chain.reversed().first { !contains($0) } ?? chain.first ?? peer
    }
}
