import Crypto
import X509

package enum X509CSR {
    /// A PEM CSR for `key`.
    package static func make(_ key: P256.Signing.PrivateKey) throws -> String {
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("agent") }, privateKey: .init(key),
            attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        return try csr.serializeAsPEM().pemString
    }
}
