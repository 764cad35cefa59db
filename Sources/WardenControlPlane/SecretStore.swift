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

    /// A secret in memory: its times, and its opened value (nil when it does not open: routes that use it fail
    /// closed).
    struct Entry {
        let info: Info
        let value: String?
    }

    let store: any SecretStorage
    let key: SymmetricKey
    /// By name; loaded at start and kept current by this process's changes.
    let entries = Mutex<[String: Entry]>([:])

    init(store: any SecretStorage, key: SymmetricKey) throws(WardenError) {
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
        var loaded: [String: Entry] = [:]
        for row in try store.secrets() {
            let value = (try? open(row.sealed, name: row.name)).flatMap { String(validating: $0, as: UTF8.self) }
            loaded[row.name] = Entry(
                info: Info(name: row.name, createdAt: row.createdAt, updatedAt: row.updatedAt), value: value)
        }
        entries.withLock { $0 = loaded }
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
        // Injected into a header: UTF-8 without control characters (CR/LF would split headers).
        guard let text = String(validating: value, as: UTF8.self), value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F })
        else {
            throw WardenError(.invalidRequest, "a secret value must be UTF-8 without control characters or line breaks")
        }
        let created = entries.withLock { $0[name]?.info.createdAt } ?? now
        try store.putSecret(
            SecretRow(name: name, sealed: try seal(value, name: name), createdAt: created, updatedAt: now),
            actor: actor)
        let entry = Entry(info: Info(name: name, createdAt: created, updatedAt: now), value: text)
        entries.withLock { $0[name] = entry }
    }

    /// Deletes a secret; routes that name it fail closed from the next request.
    public func delete(_ name: String, actor: String = "admin") throws(WardenError) {
        try store.deleteSecret(name: name, actor: actor)
        entries.withLock { _ = $0.removeValue(forKey: name) }
    }

    /// Names and times, sorted by name.
    public func list() -> [Info] { entries.withLock { $0.values.map(\.info) }.sorted { $0.name < $1.name } }

    /// The opened value (the gateway's injection), nil when unset or unopenable.
    public func value(_ name: String) -> String? { entries.withLock { $0[name]?.value } }
}
