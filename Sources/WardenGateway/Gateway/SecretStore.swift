import Crypto
import Foundation
import Synchronization
import WardenCore
import WardenStore

/// Brokered upstream credentials: sealed with AES-256-GCM under `secrets.key` (0600) and stored in SQLite, the
/// secret's name as authenticated data (a sealed value moved to another name does not open). Opened values live in
/// memory for the gateway to inject; they are never logged, returned by the API or written anywhere else.
public final class SecretStore: Sendable {
    /// A secret's name and times, never its value.
    public struct Info: Sendable, Hashable {
        public let name: String
        public let createdAt: Int64
        public let updatedAt: Int64
    }

    /// Largest secret value, bytes.
    public static let maxValueBytes = 8 * 1024

    let store: SQLiteStore
    let key: SymmetricKey
    /// Opened values by name, loaded at start and kept current by this process's changes.
    let values = Mutex<[String: [UInt8]]>([:])
    let infos = Mutex<[String: Info]>([:])

    init(store: SQLiteStore, key: SymmetricKey) throws(WardenError) {
        self.store = store
        self.key = key
        try reload()
    }

    /// Secret names: letters, digits, `.`, `_`, `-`, at most 128.
    public static func validName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 128
            && n.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E
                    || c == 0x5F || c == 0x2D
            }
    }

    /// Re-reads every secret from the store. A value that does not open (wrong key, tampered row) is left out, so a
    /// route that needs it fails closed.
    public func reload() throws(WardenError) {
        var opened: [String: [UInt8]] = [:]
        var info: [String: Info] = [:]
        for row in try store.secrets() {
            info[row.name] = Info(name: row.name, createdAt: row.createdAt, updatedAt: row.updatedAt)
            if let v = try? open(row.sealed, name: row.name) { opened[row.name] = v }
        }
        values.withLock { $0 = opened }
        infos.withLock { $0 = info }
    }

    func seal(_ value: [UInt8], name: String) throws(WardenError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(value, using: key, authenticating: Array(name.utf8))
            guard let combined = box.combined else { throw WardenError(.storage, "the secret could not be sealed") }
            return Array(combined)
        } catch let e as WardenError {
            throw e
        } catch {
            throw WardenError(.storage, "the secret could not be sealed")
        }
    }

    func open(_ sealed: [UInt8], name: String) throws(WardenError) -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: key, authenticating: Array(name.utf8)))
        } catch {
            throw WardenError(.storage, "the secret '\(name)' does not open with this data directory's key")
        }
    }

    /// Stores `value` under `name` (created or replaced); the change and its audit entry are one transaction.
    public func set(_ name: String, value: [UInt8], now: Int64, actor: String = "admin") throws(WardenError) {
        guard Self.validName(name) else {
            throw WardenError(.invalidRequest, "a secret name is 1 to 128 letters, digits, '.', '_' or '-'")
        }
        guard !value.isEmpty, value.count <= Self.maxValueBytes else {
            throw WardenError(.invalidRequest, "a secret value is 1 to \(Self.maxValueBytes) bytes")
        }
        // Injected into a header: no control characters (CR/LF would split headers).
        guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
            throw WardenError(.invalidRequest, "a secret value must not contain control characters or line breaks")
        }
        let created = infos.withLock { $0[name]?.createdAt } ?? now
        try store.putSecret(
            SecretRow(name: name, sealed: try seal(value, name: name), createdAt: created, updatedAt: now),
            actor: actor)
        values.withLock { $0[name] = value }
        infos.withLock { $0[name] = Info(name: name, createdAt: created, updatedAt: now) }
    }

    /// Deletes a secret; routes that name it fail closed from the next request.
    public func delete(_ name: String, actor: String = "admin") throws(WardenError) {
        try store.deleteSecret(name: name, actor: actor)
        values.withLock { _ = $0.removeValue(forKey: name) }
        infos.withLock { _ = $0.removeValue(forKey: name) }
    }

    /// Names and times, sorted by name.
    public func list() -> [Info] { infos.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    /// The opened value (the gateway's injection), nil when unset or unopenable.
    public func value(_ name: String) -> [UInt8]? { values.withLock { $0[name] } }
}
