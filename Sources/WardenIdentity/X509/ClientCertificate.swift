import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A client certificate presented on a mutual-TLS connection (already validated against Warden's root by the TLS
/// layer): its RFC 8705 thumbprint and the SPIFFE ID of its one URI SAN.
public struct ClientCertificate: Sendable, Hashable {
    /// base64url(SHA-256(DER)): the `cnf.x5t#S256` of tokens bound to it.
    public let thumbprint: String
    public let spiffeID: SPIFFEID

    /// Parses a DER certificate; refuses one without exactly one URI SAN holding a SPIFFE ID.
    public init(der: [UInt8]) throws(WardenError) {
        let cert: Certificate
        do { cert = try Certificate(derEncoded: der) } catch {
            throw WardenError(.invalidClient, "the client certificate cannot be parsed")
        }
        let sans = (try? cert.extensions.subjectAlternativeNames) ?? nil
        let uris = (sans.map(Array.init) ?? []).compactMap { name -> String? in
            if case .uniformResourceIdentifier(let u) = name { return u }
            return nil
        }
        guard uris.count == 1, let id = try? SPIFFEID(parsing: uris[0]) else {
            throw WardenError(.invalidClient, "the client certificate is not an X.509-SVID (one spiffe:// URI SAN)")
        }
        thumbprint = Base64URL.encode(SHA256.hash(data: der))
        spiffeID = id
    }
}

extension CertificateAuthority {
    /// A TLS server certificate for Warden's own listener, issued by the intermediate: SANs for `hosts` (IP addresses
    /// or DNS names) and the URI `spiffe://<trust-domain>/warden`, server authentication, `lifetime` seconds.
    public func issueServerCertificate(
        key: P256.Signing.PrivateKey, hosts: [String], lifetime: TimeInterval = 30 * 86400, now: Date = Date()
    ) throws -> Certificate {
        var names: [GeneralName] = [.uniformResourceIdentifier("spiffe://\(trustDomain)/warden")]
        for h in hosts {
            if let ip = Self.ipBytes(h) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))))
            } else {
                names.append(.dnsName(h))
            }
        }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(lifetime),
            issuer: intermediate.subject, subject: try DistinguishedName { CommonName("warden") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(hash: .init(key.publicKey))
                AuthorityKeyIdentifier(
                    keyIdentifier: SubjectKeyIdentifier(hash: .init(intermediateKey.publicKey)).keyIdentifier)
                SubjectAlternativeNames(names)
            }, issuerPrivateKey: .init(intermediateKey))
    }

    /// IPv4 dotted quad to bytes (IPv6 hosts are given as DNS names here: loopback listeners use IPv4).
    static func ipBytes(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }
}
