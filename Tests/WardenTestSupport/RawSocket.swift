import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import NIOCore
import Testing
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenServer

/// A blocking TCP socket on loopback, bound to a chosen source address (any of 127.0.0.0/8), for clients that
/// misbehave in ways an HTTP client library will not. Its waits run on a dispatch queue, never on the cooperative
/// pool (the server under test runs its handlers there: a blocked pool thread would starve it).
/// `@unchecked Sendable`: the descriptor is only closed in `deinit`, and each test uses a socket from one task.
package final class RawSocket: @unchecked Sendable {
    package let fd: Int32

    package init(from source: String, to port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WardenError(.io, "socket() failed") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw WardenError(.io, "cannot connect from \(source)")
        }
    }

    deinit { close(fd) }

    package func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }

    /// Whether the server closed the connection (EOF or reset) within `seconds`; what it sent before is skipped.
    package func closedBlocking(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = max(1, Int32(deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, left) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return true }
        }
        return false
    }

    /// The first bytes the server answers within `seconds` (empty when none).
    package func answer(within seconds: Double) async -> String { await reaction(within: seconds) ?? "" }

    /// Whether the server closed the connection within `seconds`, waited for off the cooperative pool.
    package func closed(within seconds: Double) async -> Bool {
        await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: self.closedBlocking(within: seconds)) }
        }
    }

    /// ``reactionBlocking(within:)`` off the cooperative pool.
    package func reaction(within seconds: Double) async -> String? {
        await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: self.reactionBlocking(within: seconds)) }
        }
    }

    /// The first bytes the server answers within `seconds`: empty when it closed the connection, nil when it did
    /// nothing at all.
    package func reactionBlocking(within seconds: Double) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(seconds * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
    }
}
