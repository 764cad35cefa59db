import Cedar
import Crypto
import Foundation
import WardenAudit
import WardenCore
import WardenIdentity
import WardenStore
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The data directory: created on first start (0700) with a root CA and an intermediate (P-256), a token-signing key,
/// the SQLite database and an admin token (every secret file 0600); reused on later starts, and refused when a secret
/// file has become readable by others.
///
/// Layout: `admin.token`, `ca/{root,intermediate}.{pem,key}`, `ca/trust-domain`, `keys/<kid>.key` (signing keys,
/// PKCS#8 PEM, deleted after their overlap), `keys/<kid>.pub` (their public halves, kept for ever: audit checkpoints
/// stay verifiable), `nonce.key`, `warden.sqlite` (state and the audit log).
public struct DataDirectory: Sendable {
    public let path: String
    public let store: SQLiteStore
    public let ca: CertificateAuthority
    /// Signing keys with their schedule, oldest first.
    public let signingKeys: [SigningKeyRing.Entry]
    public let adminToken: String
    /// The bearer token that `/metrics` accepts for its per-agent series (`metrics.token`).
    public let metricsToken: String
    public let nonceKey: SymmetricKey
    /// Seals the brokered credentials (`secrets.key`, 0600).
    public let secretsKey: SymmetricKey
    /// The audit log, attached to the store before anything is written.
    public let audit: AuditLog

    /// Opens `path`, creating what is missing. `trustDomain` must match the one the CA was made for.
    public static func open(
        path: String, trustDomain: String, clock: any WardenClock = SystemClock(), audit settings: AuditLog.Settings
    ) throws(WardenError) -> DataDirectory {
        let now = clock.seconds
        try SecureFile.ensureDirectory(path)
        try SecureFile.ensureDirectory(path + "/ca")
        try SecureFile.ensureDirectory(path + "/keys")

        let tdFile = path + "/ca/trust-domain"
        let ca: CertificateAuthority
        if SecureFile.exists(path + "/ca/root.pem") {
            let stored = try SecureFile.read(tdFile, maxBytes: 512).trimmingCharacters(in: .whitespacesAndNewlines)
            guard stored == trustDomain else {
                throw WardenError(
                    .invalidConfig,
                    "the data directory \(path) belongs to trust domain '\(stored)', not '\(trustDomain)'")
            }
            ca = try loadCA(path + "/ca", trustDomain: trustDomain)
        } else {
            do {
                ca = try CertificateAuthority.generate(
                    trustDomain: trustDomain, now: Date(timeIntervalSince1970: TimeInterval(now)))
            } catch {
                throw WardenError(.invalidConfig, "cannot create the CA: \(error)")
            }
            try SecureFile.write(ca.rootKey.pemRepresentation + "\n", to: path + "/ca/root.key")
            try SecureFile.write(ca.intermediateKey.pemRepresentation + "\n", to: path + "/ca/intermediate.key")
            try SecureFile.write(pem(ca.root), to: path + "/ca/root.pem", mode: 0o644)
            try SecureFile.write(pem(ca.intermediate), to: path + "/ca/intermediate.pem", mode: 0o644)
            try SecureFile.write(trustDomain + "\n", to: tdFile, mode: 0o644)
        }

        let adminToken = try bearerToken(path + "/admin.token")
        // A scrape token of its own, so that a Prometheus server sees per-agent series without the admin token.
        let metricsToken = try bearerToken(path + "/metrics.token")

        let nonceKey = try symmetricKey(path + "/nonce.key")
        let secretsKey = try symmetricKey(path + "/secrets.key")

        let store = try SQLiteStore(path: path + "/warden.sqlite")
        for suffix in ["", "-wal", "-shm"] { _ = chmod(path + "/warden.sqlite" + suffix, 0o600) }
        let audit = try AuditLog(store: store, settings: settings, signer: nil, clock: clock)
        var entries: [SigningKeyRing.Entry] = []
        for row in try store.signingKeys() {
            let keyText = try SecureFile.readSecret(path + "/keys/\(row.kid).key")
            guard let key = try? P256.Signing.PrivateKey(pemRepresentation: keyText) else {
                throw WardenError(.invalidKey, "\(path)/keys/\(row.kid).key is not a P-256 private key")
            }
            entries.append(
                .init(
                    key: SigningKey(kid: row.kid, privateKey: key), createdAt: row.createdAt, retiredAt: row.retiredAt))
            try publishPublicKey(path: path, key: SigningKey(kid: row.kid, privateKey: key))
        }
        if !entries.contains(where: { $0.retiredAt == nil }) {
            let entry = try newSigningKey(path: path, now: now)
            try store.saveRotation(new: SigningKeyRow(kid: entry.key.kid, createdAt: now), retiredKid: nil, at: now)
            entries.append(entry)
        }
        return DataDirectory(
            path: path, store: store, ca: ca, signingKeys: entries, adminToken: adminToken, metricsToken: metricsToken,
            nonceKey: nonceKey,
            secretsKey: secretsKey, audit: audit)
    }

    /// A random bearer token kept in `file` (0600), created on first use; at least 32 characters.
    static func bearerToken(_ file: String) throws(WardenError) -> String {
        if SecureFile.exists(file) {
            let token = try SecureFile.readSecret(file, maxBytes: 1024).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.utf8.count >= 32 else {
                throw WardenError(.invalidConfig, "\(file) holds a token shorter than 32 characters")
            }
            return token
        }
        let token = randomToken(bytes: 32)
        try SecureFile.write(token + "\n", to: file)
        return token
    }

    /// A 256-bit key kept base64url in `file` (0600), created on first use.
    static func symmetricKey(_ file: String) throws(WardenError) -> SymmetricKey {
        if SecureFile.exists(file) {
            guard
                let bytes = Base64URL.decode(
                    try SecureFile.readSecret(file).trimmingCharacters(in: .whitespacesAndNewlines)),
                bytes.count == 32
            else { throw WardenError(.invalidConfig, "\(file) is not a 32-byte base64url key") }
            return SymmetricKey(data: bytes)
        }
        let bytes = randomBytes(32)
        try SecureFile.write(Base64URL.encode(bytes) + "\n", to: file)
        return SymmetricKey(data: bytes)
    }

    /// Writes `keys/<kid>.pub` (the public key, PEM, 0644) unless present. Public halves are never deleted, so audit
    /// checkpoints signed by a retired key stay verifiable.
    static func publishPublicKey(path: String, key: SigningKey) throws(WardenError) {
        let file = path + "/keys/\(key.kid).pub"
        guard !SecureFile.exists(file) else { return }
        try SecureFile.write(key.privateKey.publicKey.pemRepresentation + "\n", to: file, mode: 0o644)
    }

    /// ``checkpointKeys(path:)`` as a JWKS.
    public static func checkpointKeysJWKS(path: String) throws(WardenError) -> JSONValue {
        let keys = try checkpointKeys(path: path)
        return .object([
            ("keys", .array(keys.sorted { $0.key < $1.key }.map { SigningKeyRing.jwk($1, kid: $0, use: "sig") }))
        ])
    }

    /// Every key that ever signed for this data directory (`keys/*.pub`), by key id: what audit checkpoints are
    /// verified with.
    public static func checkpointKeys(path: String) throws(WardenError) -> [String: P256.Signing.PublicKey] {
        let dir = path + "/keys"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw WardenError(.notFound, "\(dir) does not exist; is \(path) a Warden data directory?")
        }
        var out: [String: P256.Signing.PublicKey] = [:]
        for name in names where name.hasSuffix(".pub") {
            let text = try SecureFile.read(dir + "/" + name, maxBytes: 16 * 1024)
            let kid = String(name.dropLast(4))
            // A key id is the key's RFC 7638 thumbprint: a file cannot lend its name to another key.
            guard let key = try? P256.Signing.PublicKey(pemRepresentation: text), ECPublicJWK(key).thumbprint == kid
            else {
                throw WardenError(.invalidKey, "\(dir)/\(name) is not the P-256 public key whose thumbprint is \(kid)")
            }
            out[kid] = key
        }
        return out
    }

    /// Makes a new signing key and writes its file (0600); the caller records it in the store.
    public static func newSigningKey(path: String, now: Int64) throws(WardenError) -> SigningKeyRing.Entry {
        let key = SigningKey(privateKey: P256.Signing.PrivateKey())
        try SecureFile.write(key.privateKey.pemRepresentation + "\n", to: path + "/keys/\(key.kid).key")
        try publishPublicKey(path: path, key: key)
        return .init(key: key, createdAt: now)
    }

    static func loadCA(_ dir: String, trustDomain: String) throws(WardenError) -> CertificateAuthority {
        do {
            let root = try Certificate(pemEncoded: try SecureFile.read(dir + "/root.pem", maxBytes: 65536))
            let intermediate = try Certificate(
                pemEncoded: try SecureFile.read(dir + "/intermediate.pem", maxBytes: 65536))
            let rootKey = try P256.Signing.PrivateKey(pemRepresentation: try SecureFile.readSecret(dir + "/root.key"))
            let intKey = try P256.Signing.PrivateKey(
                pemRepresentation: try SecureFile.readSecret(dir + "/intermediate.key"))
            return CertificateAuthority(
                trustDomain: trustDomain, root: root, rootKey: rootKey, intermediate: intermediate,
                intermediateKey: intKey)
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.invalidConfig, "the CA files in \(dir) cannot be read: \(error)")
        }
    }

    static func pem(_ cert: Certificate) throws(WardenError) -> String {
        do { return try cert.serializeAsPEM().pemString + "\n" } catch {
            throw WardenError(.io, "cannot encode a certificate")
        }
    }

    /// Random bytes from the system's CSPRNG.
    public static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// A random token of `bytes` bytes, base64url.
    /// Random bytes as base64url, never starting with `-` (a command line would take the token, an id or a join token
    /// given as an argument, for an option; one in 64 did): a leading `-` becomes `_`.
    public static func randomToken(bytes: Int) -> String {
        let token = Base64URL.encode(randomBytes(bytes))
        return token.hasPrefix("-") ? "_" + token.dropFirst() : token
    }
}

/// An exclusive lock on a data directory, held by `warden serve` so that offline admin commands do not change state
/// behind a running server's in-memory view.
public final class DataDirectoryLock: Sendable {
    private let fd: Int32

    /// Takes the lock or throws `conflict` when another process holds it.
    public init(path: String) throws(WardenError) {
        let file = path + "/serve.lock"
        let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WardenError(.io, "cannot open \(file)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw WardenError(
                .conflict,
                "a warden server is running on \(path); use --server URL with --admin-token-file \(path)/admin.token")
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
