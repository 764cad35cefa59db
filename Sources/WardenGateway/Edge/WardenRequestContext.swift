import Hummingbird
import NIOCore
import NIOSSL
import Synchronization
import WardenControlPlane
import WardenCore
import WardenIdentity

/// The request context: Hummingbird's core storage plus the connection's channel, from which a mutual-TLS
/// listener reads the client certificate.
public struct WardenRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection (nil in in-process tests).
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The client's address as the connection shows it (nil in in-process tests): what refusals are summarised by
    /// and what the upstream is told in `Forwarded`.
    package var source: String? { channel?.remoteAddress?.ipAddress }

    /// The X.509-SVID the client presented on a TLS connection (the TLS layer has already validated it against
    /// Warden's root), or nil on plain connections and TLS ones without a client certificate.
    package func clientCertificate() async throws(WardenError) -> ClientCertificate? {
        guard let channel else { return nil }
        guard let peer = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        guard let der = try? peer.toDERBytes() else {
            throw WardenError(.invalidClient, "the client certificate cannot be read")
        }
        if let known = Self.parsed.withLock({ $0[der] }) { return known }
        let parsed = try ClientCertificate(der: der)
        Self.parsed.withLock { cache in
            if cache.count >= 4096 { cache.removeAll(keepingCapacity: true) }
            cache[der] = parsed
        }
        return parsed
    }

    /// Certificates already parsed, by their exact DER (a keep-alive connection presents the same one on every
    /// request; the TLS layer validated it at the handshake, so only the parsing is saved). Bounded.
    static let parsed = Mutex<[[UInt8]: ClientCertificate]>([:])
}
