import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that accepts connections and never answers, for timeout tests.
public struct LocalSocket: Sendable {
    public let descriptor: Int32
    public let port: Int

    public static func listen() throws -> LocalSocket {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bind(descriptor, sockaddrPointer, length) == 0 && Glibc.listen(descriptor, 16) == 0
                    && getsockname(descriptor, sockaddrPointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return LocalSocket(descriptor: descriptor, port: Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port that nothing listens on (bound once, then released).
    public static func unusedPort() throws -> Int {
        let socket = try listen()
        socket.close()
        return socket.port
    }

    public func close() {
        Glibc.close(descriptor)
    }
}

/// A loopback TCP port that nothing listens on right now.
public func unusedPort() throws -> Int {
    try LocalSocket.unusedPort()
}
