import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// Warden's certificate authority: a self-signed root and an intermediate (both P-256) for a trust domain, and the
/// issuance of X.509-SVIDs from agents' CSRs following the SPIFFE X.509-SVID specification: exactly one URI SAN (the
/// SPIFFE ID), `cA=false`, critical key usage with digitalSignature, server and client authentication EKUs, lifetime
/// of at most an hour, chained to the intermediate.
public struct CertificateAuthority: Sendable {
    public let trustDomain: String
    public let root: Certificate
    public let rootKey: P256.Signing.PrivateKey
    public let intermediate: Certificate
    public let intermediateKey: P256.Signing.PrivateKey

    /// The longest SVID lifetime issued, in seconds.
    public static let maxSVIDLifetime: TimeInterval = 3600
    /// The shortest SVID lifetime issued, in seconds (short-lived SVIDs for tests and for rotation drills).
    public static let minSVIDLifetime: TimeInterval = 10

    public init(
        trustDomain: String, root: Certificate, rootKey: P256.Signing.PrivateKey, intermediate: Certificate,
        intermediateKey: P256.Signing.PrivateKey
    ) {
        self.trustDomain = trustDomain
        self.root = root
        self.rootKey = rootKey
        self.intermediate = intermediate
        self.intermediateKey = intermediateKey
    }

    /// Creates a new root (10 years) and intermediate (1 year) for `trustDomain`.
    public static func generate(trustDomain: String, now: Date = Date()) throws -> CertificateAuthority {
        let td = try SPIFFEID(parsing: "spiffe://\(trustDomain)")
        let rootKey = P256.Signing.PrivateKey()
        let intermediateKey = P256.Signing.PrivateKey()
        let rootName = try DistinguishedName {
            OrganizationName("Warden")
            CommonName("Warden root CA \(trustDomain)")
        }
        let intermediateName = try DistinguishedName {
            OrganizationName("Warden")
            CommonName("Warden intermediate CA \(trustDomain)")
        }
        let tdURI = GeneralName.uniformResourceIdentifier(td.description)
        let root = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(rootKey.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: rootName, subject: rootName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(rootKey.publicKey))
                SubjectAlternativeNames([tdURI])
            }, issuerPrivateKey: .init(rootKey))
        let intermediate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(intermediateKey.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: rootName, subject: intermediateName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(intermediateKey.publicKey))
                AuthorityKeyIdentifier(
                    keyIdentifier: SubjectKeyIdentifier(hash: .init(rootKey.publicKey)).keyIdentifier)
                SubjectAlternativeNames([tdURI])
            }, issuerPrivateKey: .init(rootKey))
        return CertificateAuthority(
            trustDomain: trustDomain, root: root, rootKey: rootKey, intermediate: intermediate,
            intermediateKey: intermediateKey)
    }

    /// Issues an X.509-SVID for `id` from a PEM CSR whose signature proves possession of its key. The CSR's subject
    /// and requested extensions are ignored: Warden decides what goes into an SVID.
    public func issueSVID(csrPEM: String, id: SPIFFEID, lifetime: TimeInterval = 3600, now: Date = Date()) throws
        -> Certificate
    {
        guard id.trustDomain == trustDomain else {
            throw WardenError(.invalidKey, "the SPIFFE ID is not in this trust domain")
        }
        guard csrPEM.utf8.count <= 16384 else { throw WardenError(.invalidKey, "the CSR is larger than 16 KiB") }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw WardenError(.invalidKey, "the CSR is not a valid PEM certificate signing request")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw WardenError(.invalidKey, "the CSR signature does not verify")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else {
            throw WardenError(.invalidKey, "SVID keys must be P-256")
        }
        let lifetime = min(max(lifetime, Self.minSVIDLifetime), Self.maxSVIDLifetime)
        // Backdated for clock skew (30 s, less for very short lifetimes), within the lifetime.
        let backdate = min(30, lifetime / 4)
        let subject = try DistinguishedName {
            OrganizationName("SPIFFE")
        }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: csr.publicKey,
            // The whole validity, backdating for clock skew included, stays within the lifetime.
            notValidBefore: now.addingTimeInterval(-backdate),
            notValidAfter: now.addingTimeInterval(lifetime - backdate),
            issuer: intermediate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectKeyIdentifier(hash: csr.publicKey)
                AuthorityKeyIdentifier(
                    keyIdentifier: SubjectKeyIdentifier(hash: .init(intermediateKey.publicKey)).keyIdentifier)
                SubjectAlternativeNames([.uniformResourceIdentifier(id.description)])
            }, issuerPrivateKey: .init(intermediateKey))
    }

    /// PEM of the trust bundle (the root).
    public func bundlePEM() throws -> String { try root.serializeAsPEM().pemString + "\n" }

    /// PEM of an SVID followed by the intermediate (the chain an agent presents).
    public func chainPEM(_ svid: Certificate) throws -> String {
        try svid.serializeAsPEM().pemString + "\n" + intermediate.serializeAsPEM().pemString + "\n"
    }
}
