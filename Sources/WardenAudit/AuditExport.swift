import Cedar
import Foundation
import Synchronization
import WardenCore

/// Export formats for SIEMs.
public enum AuditFormat: String, Sendable, CaseIterable {
    /// The stored entries, byte for byte (what the hashes cover), one per line.
    case jsonl
    /// OCSF 1.4.0 events, one per line: token issuance as Authorize Session (3003), everything else as API Activity
    /// (6003), with the Security Control profile's `action_id`/`disposition_id` for decisions.
    case ocsf

    /// One output line (without the newline) for a stored entry.
    public func line(_ entry: String, product version: String = OCSF.productVersion) -> String {
        switch self {
        case .jsonl: entry
        case .ocsf: OCSF.event(entry, productVersion: version)?.serialized ?? entry
        }
    }
}

/// The mapping of audit entries to OCSF (Open Cybersecurity Schema Framework) 1.4.0.
public enum OCSF {
    public static let schemaVersion = "1.4.0"
    public static let productVersion = "0.4.0"

    /// The OCSF event for a stored entry, or nil when the entry is not valid JSON.
    public static func event(_ entry: String, productVersion: String = productVersion) -> JSONValue? {
        guard let e = try? JSONValue.parse(entry, maxDepth: 16), case .object = e,
            let seq = e["seq"]?.integerValue, let timeText = e["time"]?.stringValue,
            let micros = AuditEvent.parseRFC3339(timeText)
        else { return nil }
        let action = e["action"]?.stringValue ?? "unknown"
        let kind = e["kind"]?.stringValue ?? "decision"
        let decision = e["decision"]?.stringValue
        let denied = decision == "deny"
        let actor = e["actor"]?.stringValue ?? "unknown"
        let agent = e["agent"]?.stringValue
        let details = e["details"]
        let isToken = action == "token.issue" || action == "token.exchange"

        var out: [(String, JSONValue)] = []
        let classUID: Int
        let activityID: Int
        let activityName: String
        if isToken {
            classUID = 3003
            activityID = 1
            activityName = "Assign Privileges"
        } else {
            classUID = 6003
            (activityID, activityName) = apiActivity(action: action, method: details?["method"]?.stringValue)
        }
        let categoryUID = classUID / 1000
        out.append(("class_uid", .number(String(classUID))))
        out.append(("class_name", .string(isToken ? "Authorize Session" : "API Activity")))
        out.append(("category_uid", .number(String(categoryUID))))
        out.append(("category_name", .string(isToken ? "Identity & Access Management" : "Application Activity")))
        out.append(("activity_id", .number(String(activityID))))
        out.append(("activity_name", .string(activityName)))
        out.append(("type_uid", .number(String(classUID * 100 + activityID))))
        out.append(
            ("type_name", .string("\(isToken ? "Authorize Session" : "API Activity"): \(activityName)")))
        out.append(("time", .number(String(micros / 1000))))
        let severity = denied ? (kind == "decision" ? 3 : 2) : 1
        out.append(("severity_id", .number(String(severity))))
        out.append(("severity", .string(["Unknown", "Informational", "Low", "Medium"][severity])))
        out.append(("status_id", .number(denied ? "2" : "1")))
        out.append(("status", .string(denied ? "Failure" : "Success")))
        if let reason = e["reason"]?.stringValue { out.append(("status_code", .string(reason))) }
        if let message = e["message"]?.stringValue {
            out.append(("message", .string(message)))
            if denied { out.append(("status_detail", .string(message))) }
        }
        if decision != nil {
            out.append(("action_id", .number(denied ? "2" : "1")))
            out.append(("action", .string(denied ? "Denied" : "Allowed")))
            out.append(("disposition_id", .number(denied ? "2" : "1")))
            out.append(("disposition", .string(denied ? "Blocked" : "Allowed")))
        }

        // Who acted.
        let principal = agent ?? actor
        let user: JSONValue = .object([
            ("uid", .string(principal)), ("name", .string(name(of: principal))),
            ("type_id", .number(principal.hasPrefix("spiffe://") ? "99" : (actor == "admin" ? "2" : "3"))),
            ("type", .string(principal.hasPrefix("spiffe://") ? "Agent" : (actor == "admin" ? "Admin" : "System"))),
        ])
        var actorPairs: [(String, JSONValue)] = [("user", user), ("app_name", .string("warden"))]
        if let policies = e["policies"]?.arrayValue, !policies.isEmpty {
            actorPairs.append(
                (
                    "authorizations",
                    .array(
                        policies.map {
                            .object([
                                ("decision", .string(decision ?? "allow")),
                                ("policy", .object([("uid", $0), ("name", $0)])),
                            ])
                        })
                ))
        }
        if isToken {
            out.append(("user", user))
            let scope = details?["scope"]?.stringValue ?? ""
            out.append(("privileges", .array(scope.split(separator: " ").map { .string(String($0)) })))
            out.append(("actor", .object(actorPairs)))
        } else {
            out.append(("actor", .object(actorPairs)))
            var api: [(String, JSONValue)] = [
                ("operation", .string(action)), ("request", .object([("uid", .string(String(seq)))])),
            ]
            if let resource = e["resource"]?.stringValue {
                api.append(("service", .object([("name", .string(resource))])))
            }
            if denied {
                api.append(
                    ("response", .object([("error", .string(e["reason"]?.stringValue ?? "denied"))])))
            }
            out.append(("api", .object(api)))
            if let method = details?["method"]?.stringValue {
                var request: [(String, JSONValue)] = [("http_method", .string(method))]
                if let path = details?["path"]?.stringValue {
                    request.append(("url", .object([("path", .string(path))])))
                }
                out.append(("http_request", .object(request)))
            }
        }
        if let source = e["source"]?.stringValue {
            out.append(("src_endpoint", .object([("ip", .string(source))])))
        } else {
            out.append(("src_endpoint", .object([("name", .string(actor == "admin" ? "admin" : "warden"))])))
        }
        if let resource = e["resource"]?.stringValue {
            out.append(("resources", .array([.object([("uid", .string(resource)), ("type", .string(kind))])])))
        }
        out.append(
            (
                "metadata",
                .object([
                    ("version", .string(schemaVersion)),
                    (
                        "product",
                        .object([
                            ("name", .string("Warden")), ("vendor_name", .string("Warden")),
                            ("version", .string(productVersion)),
                        ])
                    ),
                    ("uid", .string(String(seq))), ("sequence", .number(String(seq))), ("log_name", .string("audit")),
                    ("event_code", .string(action)), ("profiles", .array([.string("security_control")])),
                ])
            ))
        // What OCSF has no place for stays, as recorded, in `unmapped`.
        var unmapped: [(String, JSONValue)] = [("kind", .string(kind)), ("actor", .string(actor))]
        for key in ["agent_id", "decision", "reason", "trust", "delegation", "request_digest", "latency_us", "details"]
        {
            if let v = e[key] { unmapped.append((key, v)) }
        }
        out.append(("unmapped", .object(unmapped)))
        return .object(out)
    }

    static func name(of principal: String) -> String {
        if principal.hasPrefix("spiffe://"), let last = principal.split(separator: "/").last { return String(last) }
        return principal
    }

    /// API Activity's activity: from the HTTP method of a proxied call, or from the kind of administrative action.
    static func apiActivity(action: String, method: String?) -> (Int, String) {
        if let method {
            switch method.uppercased() {
            case "POST": return (1, "Create")
            case "GET", "HEAD": return (2, "Read")
            case "PUT", "PATCH": return (3, "Update")
            case "DELETE": return (4, "Delete")
            default: return (99, "Other")
            }
        }
        switch action {
        case "agent.register", "agent.enroll", "agent.join_token", "svid.issue": return (1, "Create")
        case "agent.state", "key.rotate", "policy.change": return (3, "Update")
        case "token.revoke", "audit.prune": return (4, "Delete")
        default: return (99, "Other")
        }
    }
}

/// A continuous export of the audit log to a file (JSON lines or OCSF) with size-based rotation: `path` grows until
/// `maxBytes`, then becomes `path.1` (older files shift up to `path.<keep>`, the oldest is deleted). The last exported
/// sequence number is kept in `path.seq` after each page and also read back from the file's last line at start, so a
/// restart resumes where it stopped even if it died between writing a page and recording its position.
public final class AuditFileExporter: Sendable {
    public let log: AuditLog
    public let path: String
    public let format: AuditFormat
    public let maxBytes: Int
    public let keep: Int
    /// The last exported sequence number, once read.
    private let exported = Mutex<Int64?>(nil)

    public init(log: AuditLog, path: String, format: AuditFormat, maxBytes: Int = 100 << 20, keep: Int = 5) {
        self.log = log
        self.path = path
        self.format = format
        self.maxBytes = max(4096, maxBytes)
        self.keep = max(1, keep)
    }

    var positionFile: String { path + ".seq" }

    /// The last exported sequence number: the larger of `path.seq` and the sequence number of the file's last line.
    public func position() -> Int64 {
        if let p = exported.withLock({ $0 }) { return p }
        var p: Int64 = 0
        if let text = try? String(contentsOfFile: positionFile, encoding: .utf8) {
            p = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        if let last = Self.lastLine(of: path) {
            let seq =
                AuditVerifier.seq(of: last)
                ?? (try? JSONValue.parse(last, maxDepth: 16))?["metadata"]?["sequence"]?.integerValue
            p = max(p, seq ?? 0)
        }
        exported.withLock { $0 = p }
        return p
    }

    /// The last complete line of a file (reading at most its last 256 KiB).
    static func lastLine(of path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let end = try? handle.seekToEnd(), end > 0 else { return nil }
        let start = end > 262_144 ? end - 262_144 : 0
        try? handle.seek(toOffset: start)
        guard let data = try? handle.readToEnd() else { return nil }
        let lines = data.split(separator: 10)
        return lines.last.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Exports everything not yet exported; returns the new position.
    @discardableResult
    public func exportPending() throws(WardenError) -> Int64 {
        var position = position()
        while true {
            // Small pages, so that a file outgrows `maxBytes` by at most one page before it rotates.
            let entries = try log.entries(after: position, limit: 200)
            if entries.isEmpty { return position }
            var text = ""
            for (_, entry) in entries {
                text += format.line(entry)
                text += "\n"
            }
            try append(text)
            position = entries.last!.0
            exported.withLock { $0 = position }
            try SecureFile.write(String(position) + "\n", to: positionFile, mode: 0o600)
            try rotateIfNeeded()
        }
    }

    func append(_ text: String) throws(WardenError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WardenError(.io, "cannot open the audit export file \(path)") }
        defer { close(fd) }
        let ok = Array(text.utf8).withUnsafeBytes { p -> Bool in
            var done = 0
            while done < p.count {
                let n = write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return fsync(fd) == 0
        }
        guard ok else { throw WardenError(.io, "cannot write the audit export file \(path)") }
    }

    func rotateIfNeeded() throws(WardenError) {
        var st = stat()
        guard stat(path, &st) == 0, Int(st.st_size) >= maxBytes else { return }
        unlink(path + ".\(keep)")
        for i in stride(from: keep - 1, through: 1, by: -1) { rename(path + ".\(i)", path + ".\(i + 1)") }
        guard rename(path, path + ".1") == 0 else { throw WardenError(.io, "cannot rotate \(path)") }
    }

    /// Exports as the log grows until the task is cancelled (also every `interval`, to retry after an error).
    public func run(interval: Duration = .seconds(1)) async {
        let (wake, waker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            if let updates = log.updates() {
                group.addTask { for await _ in updates { waker.yield() } }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    waker.yield()
                }
            }
            for await _ in wake {
                if Task.isCancelled { break }
                _ = try? exportPending()
            }
            group.cancelAll()
        }
    }
}
