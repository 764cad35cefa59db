import Hummingbird
import NIOCore
import NIOSSL
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

    /// The X.509-SVID the client presented on a TLS connection (the TLS layer has already validated it against
    /// Warden's root), or nil on plain connections and TLS ones without a client certificate.
    func clientCertificate() async throws(WardenError) -> ClientCertificate? {
        guard let channel else { return nil }
        guard let peer = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        guard let der = try? peer.toDERBytes() else {
            throw WardenError(.invalidClient, "the client certificate cannot be read")
        }
        return try ClientCertificate(der: der)
    }
}
