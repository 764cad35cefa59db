import NIOCore
import NIOHPACK
import NIOHTTP2
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The peers of the Workload API's connections, as the kernel reported them at accept time, keyed by a connection
/// number. gRPC handlers do not see their connection; ``PeerHeaderHandler`` hands them the number in a header that
/// only the server can set (whatever a client sends under that name is removed first).
public final class PeerRegistry: Sendable {
    /// The request header that carries the connection number to the RPC handlers.
    public static let header = "warden-peer-connection"
    /// `SO_PEERPIDFD` (Linux 6.5): a pidfd of the process that connected. Not in older C headers.
    static let soPeerPIDFD: Int32 = 77
    /// The most connections served at once.
    public static let maxConnections = 1024

    let peers = Mutex<[UInt64: WorkloadPeer]>([:])
    let byChannel = Mutex<[ObjectIdentifier: UInt64]>([:])
    let next = Atomic<UInt64>(1)
    let attestor: WorkloadAttestor

    public init(attestor: WorkloadAttestor) { self.attestor = attestor }

    public func peer(_ connection: UInt64) -> WorkloadPeer? { peers.withLock { $0[connection] } }

    public var count: Int { peers.withLock { $0.count } }

    /// Reads the accepted connection's peer credentials (on its event loop), registers them, and forgets them (closing
    /// the pidfd) when the connection closes. A connection whose credentials cannot be read is registered with pid 0:
    /// every RPC on it is refused.
    func accepted(_ channel: any Channel) -> EventLoopFuture<Void> {
        // Each connection holds a pidfd: a local process opening connections without end would exhaust the node's
        // descriptors. Past the bound, new connections are closed at once.
        guard count < Self.maxConnections else {
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let id = next.add(1, ordering: .relaxed).oldValue
        let key = ObjectIdentifier(channel)
        guard let provider = channel as? any SocketOptionProvider else {
            register(id, key, WorkloadPeer(pid: 0, uid: UInt32.max, gid: UInt32.max, startTime: nil, pidfd: nil))
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        let pidfd: EventLoopFuture<Int32?> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(Self.soPeerPIDFD)
        ).map { (fd: Int32) -> Int32? in
            guard fd >= 0 else { return nil }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // never inherited by a process the node starts
            return fd
        }.recover { _ in nil }
        return pidfd.flatMap { fd in
            provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
                .map { (cred: PeerCred) in (cred, fd) }
                .flatMapErrorThrowing { error in
                    if let fd { close(fd) }
                    throw error
                }
        }.map { [attestor] (cred: PeerCred, fd: Int32?) in
            let start = cred.pid > 0 ? attestor.startTime(pid: cred.pid) : nil
            let binary = cred.pid > 0 ? attestor.binaryID(pid: cred.pid) : nil
            self.register(
                id, key,
                WorkloadPeer(pid: cred.pid, uid: cred.uid, gid: cred.gid, startTime: start, pidfd: fd, binary: binary))
        }.recover { _ in
            self.register(id, key, WorkloadPeer(pid: 0, uid: UInt32.max, gid: UInt32.max, startTime: nil, pidfd: nil))
        }.always { _ in
            channel.closeFuture.whenComplete { _ in
                self.byChannel.withLock { _ = $0.removeValue(forKey: key) }
                if let gone = self.peers.withLock({ $0.removeValue(forKey: id) }), let fd = gone.pidfd { close(fd) }
            }
        }
    }

    func register(_ id: UInt64, _ key: ObjectIdentifier, _ peer: WorkloadPeer) {
        peers.withLock { $0[id] = peer }
        byChannel.withLock { $0[key] = id }
    }

    /// Puts the connection number into every request on a new HTTP/2 stream of a registered connection.
    func stream(_ streamChannel: any Channel) -> EventLoopFuture<Void> {
        let id = streamChannel.parent.flatMap { p in byChannel.withLock { $0[ObjectIdentifier(p)] } } ?? 0
        return streamChannel.eventLoop.makeCompletedFuture {
            try streamChannel.pipeline.syncOperations.addHandler(PeerHeaderHandler(connection: id), position: .first)
        }
    }
}

/// `struct ucred` of `<sys/socket.h>` (only declared with `_GNU_SOURCE`): what `SO_PEERCRED` fills in.
struct PeerCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Replaces any ``PeerRegistry/header`` a client sent with the server's own (the connection's number; 0 when unknown),
/// on every HEADERS frame of the stream.
final class PeerHeaderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    let value: String

    init(connection: UInt64) { value = String(connection) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        guard case .headers(var headers) = payload else {
            context.fireChannelRead(data)
            return
        }
        headers.headers.remove(name: PeerRegistry.header)
        headers.headers.add(name: PeerRegistry.header, value: value)
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
    }
}
