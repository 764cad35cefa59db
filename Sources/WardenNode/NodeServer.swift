import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// `warden node`'s Workload API server: gRPC over HTTP/2 on a unix socket, with each accepted connection's peer
/// credentials read from the kernel (``PeerRegistry``). The socket is made connectable by every local user (mode 0777,
/// as SPIRE's is): the attestation, not the file mode, decides who gets an identity.
public struct NodeServer: Sendable {
    public let path: String
    public let node: NodeAgent
    public let peers: PeerRegistry
    let logger: Logger

    public init(path: String, node: NodeAgent, attestor: WorkloadAttestor = WorkloadAttestor(), logger: Logger) {
        self.path = path
        self.node = node
        self.peers = PeerRegistry(attestor: attestor)
        self.logger = logger
    }

    /// Removes a stale socket left by an earlier run; refuses to remove anything that is not a socket.
    static func clear(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw AttestationFailure("\(path) exists and is not a socket; refusing to replace it")
        }
        unlink(path)
    }

    /// Serves until cancelled; `ready` is called once the socket accepts connections.
    public func run(ready: @escaping @Sendable () -> Void = {}) async throws {
        guard path.utf8.count < 108 else { throw AttestationFailure("the socket path is longer than 107 bytes") }
        try Self.clear(path)
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = 64 * 1024
        // A workload needs a handful of streams (X.509, bundles, JWT); more would only hold the node's memory.
        config.http2.maxConcurrentStreams = 16
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { [peers] channel in peers.accepted(channel) }
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { [peers] channel in peers.stream(channel) }
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: path), transportSecurity: .plaintext, config: config)
        let server = GRPCServer(
            transport: transport, services: [WorkloadAPI(node: node, peers: peers, logger: logger)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do { try await server.serve() } catch  where Task.isCancelled {
                    // Stopping: the transport reports the cancellation as an error.
                }
            }
            group.addTask { await node.run() }
            _ = try await transport.listeningAddress
            chmod(path, 0o777)
            ready()
            // Serve until cancelled; then stop both.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            server.beginGracefulShutdown()
            group.cancelAll()
        }
        unlink(path)
    }
}
