import Cedar
import Crypto
import Dispatch
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenGateway
import WardenIdentity

/// `/v1/admin/audit/...`: checkpoints, the keys that verify them, queries, export and a live tail, proofs,
/// verification of the live log and pruning (`docs/audit.md`).
enum AuditRoutes {
    static func add(to admin: RouterGroup<WardenRequestContext>, _ cp: ControlPlane) {
        let audit = admin.group("audit")

        audit.get("/checkpoint") { request, context in
            guard let cp = try cp.audit.latestCheckpoint() else {
                throw WardenError(.notFound, "no checkpoint yet: POST /v1/admin/audit/checkpoint signs one")
            }
            return HTTPSupport.json(.ok, cp.json)
        }
        audit.post("/checkpoint") { request, context in
            guard let cp = try cp.audit.checkpoint() else { throw WardenError(.notFound, "the audit log is empty") }
            return HTTPSupport.json(.ok, cp.json)
        }
        audit.get("/checkpoints") { request, context in
            let from = try integer(request, "from", default: 0, range: 0...Int64.max)
            let limit = try integer(request, "limit", default: 1000, range: 1...10_000)
            let list = try cp.audit.checkpoints(from: from, limit: Int(limit))
            return HTTPSupport.json(.ok, .object([("checkpoints", .array(list.map(\.json)))]))
        }
        audit.get("/keys") { request, context in
            HTTPSupport.json(.ok, try DataDirectory.checkpointKeysJWKS(path: cp.dataPath))
        }
        audit.get("/events") { request, context in
            var q = try query(request, cp)
            q.limit = Int(try integer(request, "limit", default: 100, range: 1...1000))
            let rows = try cp.audit.query(q)
            // Entries go out exactly as stored.
            var text = "{\"events\":["
            for (i, row) in rows.enumerated() {
                if i > 0 { text += "," }
                text += row.1
            }
            text += "],\"next\":" + (rows.count == q.limit ? String(rows.last!.0) : "null")
            text += ",\"tree_size\":\(cp.audit.size)}"
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        audit.get("/export") { request, context in
            let format = try formatParameter(request)
            let q = try query(request, cp)
            // At most `limit` entries (all by default); page with since=<last seq + 1>.
            let total = try integer(request, "limit", default: Int64.max, range: 1...Int64.max)
            let log = cp.audit
            return Response(
                status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    var page = q
                    var left = total
                    while left > 0 {
                        page.limit = Int(min(2000, left))
                        let rows = try log.query(page)
                        if rows.isEmpty { break }
                        left -= Int64(rows.count)
                        var text = ""
                        for (_, entry) in rows { text += format.line(entry) + "\n" }
                        try await writer.write(ByteBuffer(string: text))
                        page.after = rows.last!.0
                        if rows.count < page.limit { break }
                    }
                    try await writer.finish(nil)
                })
        }
        audit.get("/tail") { request, context in
            let format = try formatParameter(request)
            var start = try query(request, cp)
            if request.uri.queryParameters["after"] == nil && request.uri.queryParameters["since"] == nil {
                start.after = cp.audit.size  // only what comes next
            }
            let q = start
            let log = cp.audit
            guard let updates = log.updates() else {
                throw WardenError(.storage, "too many readers follow the audit log; try again later")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    var page = q
                    page.limit = 2000
                    // Ends when the client goes away (the write fails) or the server begins to shut down.
                    try await withGracefulShutdownHandler {
                        for await size in updates {
                            while page.after < size {
                                let rows = try log.query(page)
                                if rows.isEmpty {
                                    page.after = size
                                    break
                                }
                                var text = ""
                                for (_, entry) in rows { text += format.line(entry) + "\n" }
                                try await writer.write(ByteBuffer(string: text))
                                page.after = rows.last!.0
                            }
                        }
                    } onGracefulShutdown: {
                        log.finishUpdates()
                    }
                    try await writer.finish(nil)
                })
        }
        audit.get("/proof/inclusion") { request, context in
            let seq = try integer(request, "seq", default: nil, range: 1...Int64.max)
            let size =
                request.uri.queryParameters["tree_size"].map { _ in () } == nil
                ? nil : try integer(request, "tree_size", default: nil, range: 1...Int64.max)
            return HTTPSupport.json(.ok, try cp.audit.inclusionProof(seq: seq, treeSize: size).json)
        }
        audit.get("/proof/consistency") { request, context in
            let first = try integer(request, "first", default: nil, range: 1...Int64.max)
            let second =
                request.uri.queryParameters["second"] == nil
                ? nil : try integer(request, "second", default: nil, range: 1...Int64.max)
            return HTTPSupport.json(.ok, try cp.audit.consistencyProof(first: first, second: second).json)
        }
        audit.get("/verify") { request, context in
            // A full recomputation: off the request threads.
            let result = try await withCheckedContinuation { c in
                DispatchQueue.global().async {
                    c.resume(returning: Result { () throws(WardenError) in try cp.verifyAudit() })
                }
            }.get()
            return HTTPSupport.json(result.ok ? .ok : .conflict, result.json)
        }
        audit.post("/prune") { request, context in
            let json = try WardenRouter.parseJSON(
                try await HTTPSupport.body(request, limit: HTTPSupport.maxJSONBytes))
            let through: Int64
            if let seq = json["through"]?.integerValue {
                through = seq
            } else if let before = json["before"]?.stringValue, let t = AuditEvent.parseRFC3339(before) {
                through = try cp.audit.lastSeq(before: t)
            } else {
                throw WardenError(
                    .invalidRequest, "the body must be {\"through\": SEQ} or {\"before\": RFC3339 time}")
            }
            let anchor = try cp.audit.prune(through: through, actor: "admin")
            return HTTPSupport.json(.ok, .object([("pruned_through", .number(String(anchor)))]))
        }
    }

    static func formatParameter(_ request: Request) throws(WardenError) -> AuditFormat {
        let name = request.uri.queryParameters["format"].map(String.init) ?? "jsonl"
        guard let f = AuditFormat(rawValue: name) else {
            throw WardenError(.invalidRequest, "format must be jsonl or ocsf")
        }
        return f
    }

    static func integer(_ request: Request, _ name: String, default value: Int64?, range: ClosedRange<Int64>)
        throws(WardenError) -> Int64
    {
        guard let text = request.uri.queryParameters[Substring(name)] else {
            guard let value else { throw WardenError(.invalidRequest, "\(name) is required") }
            return value
        }
        guard let n = Int64(text), range.contains(n) else {
            throw WardenError(.invalidRequest, "\(name) must be a whole number in \(range.lowerBound)...")
        }
        return n
    }

    /// The filter of `/events`, `/export` and `/tail`: `agent` (id, name or SPIFFE ID), `decision`, `kind`,
    /// `action`, `since` (a sequence number, inclusive, or an RFC 3339 time), `until` (RFC 3339, exclusive), `after`
    /// (a sequence number, exclusive).
    static func query(_ request: Request, _ cp: ControlPlane) throws(WardenError) -> AuditLog.Query {
        let p = request.uri.queryParameters
        func text(_ name: String) -> String? { p[Substring(name)].map(String.init) }
        var agent = text("agent")
        if let a = agent, !a.hasPrefix("spiffe://"), let r = try cp.store.agent(a) { agent = r.spiffeID.description }
        var q = try AuditLog.Query(
            since: text("since"), until: text("until"), agent: agent, decision: text("decision"), kind: text("kind"),
            action: text("action"))
        if p["after"] != nil { q.after = max(q.after, try integer(request, "after", default: 0, range: 0...Int64.max)) }
        return q
    }
}

extension ControlPlane {
    /// Verifies the live audit log (a consistent snapshot) with every key that ever signed for this data directory.
    public func verifyAudit(external: [Checkpoint] = []) throws(WardenError) -> AuditVerification {
        let keys = try DataDirectory.checkpointKeys(path: dataPath)
        let origin = config.trustDomain + "/audit"
        return try audit.verify(keys: keys, external: external, origin: origin)
    }
}
