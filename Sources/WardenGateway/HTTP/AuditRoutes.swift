import Cedar
import Crypto
import HTTPTypes
import Hummingbird
import NIOCore
import WardenAudit
import WardenCore
import WardenIdentity

/// `/v1/admin/audit/...`: checkpoints, the keys that verify them, queries, export and a live tail, proofs,
/// verification of the live log and pruning (`docs/audit.md`).
enum AuditRoutes {
    static func add(to router: Router<WardenRequestContext>, _ cp: ControlPlane) {
        let audit = router.group("/v1/admin/audit")
        let guarded = AdminRoutes.guarded

        audit.get("/checkpoint") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                // The first request on a fresh log signs one, so there is always something to keep.
                var latest = try cp.audit.latestCheckpoint()
                if latest == nil { latest = try cp.audit.checkpoint() }
                guard let cp = latest else {
                    throw WardenError(.notFound, "the audit log is empty")
                }
                return HTTPSupport.json(.ok, cp.json)
            }
        }
        audit.post("/checkpoint") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                guard let cp = try cp.audit.checkpoint() else { throw WardenError(.notFound, "the audit log is empty") }
                return HTTPSupport.json(.ok, cp.json)
            }
        }
        audit.get("/checkpoints") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                let from = try integer(request, "from", default: 0, range: 0...Int64.max)
                let limit = try integer(request, "limit", default: 1000, range: 1...10_000)
                let list = try cp.audit.checkpoints(from: from, limit: Int(limit))
                return HTTPSupport.json(.ok, .object([("checkpoints", .array(list.map(\.json)))]))
            }
        }
        audit.get("/keys") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                HTTPSupport.json(.ok, try cp.auditKeysJWKS())
            }
        }
        audit.get("/events") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                var q = try query(request, cp)
                q.limit = Int(try integer(request, "limit", default: 100, range: 1...1000))
                let rows = try cp.audit.query(q)
                // Entries go out exactly as stored.
                var text = "{\"events\":["
                for (i, row) in rows.enumerated() {
                    if i > 0 { text += "," }
                    text += row.1
                }
                text += "],\"next\":" + (rows.count == q.limit ? String(rows.last!.0) : "null") + "}"
                return Response(
                    status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: text)))
            }
        }
        audit.get("/export") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
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
        }
        audit.get("/tail") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                let format = try formatParameter(request)
                var start = try query(request, cp)
                if request.uri.queryParameters["after"] == nil && request.uri.queryParameters["since"] == nil {
                    start.after = cp.audit.size  // only what comes next
                }
                let q = start
                let log = cp.audit
                return Response(
                    status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"],
                    body: ResponseBody { writer in
                        var page = q
                        page.limit = 2000
                        // Ends when the client goes away (the write fails) or the server shuts down.
                        for await size in log.updates() {
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
                        try await writer.finish(nil)
                    })
            }
        }
        audit.get("/proof/inclusion") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                let seq = try integer(request, "seq", default: nil, range: 1...Int64.max)
                let size =
                    request.uri.queryParameters["tree_size"].map { _ in () } == nil
                    ? nil : try integer(request, "tree_size", default: nil, range: 1...Int64.max)
                let p = try cp.audit.inclusionProof(seq: seq, treeSize: size)
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("seq", .number(String(seq))), ("leaf_index", .number(String(seq - 1))),
                        ("tree_size", .number(String(p.treeSize))), ("leaf_hash", .string(p.leaf.hex)),
                        ("root_hash", .string(p.root.hex)), ("proof", .array(p.proof.map { .string($0.hex) })),
                    ]))
            }
        }
        audit.get("/proof/consistency") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                let first = try integer(request, "first", default: nil, range: 1...Int64.max)
                let second =
                    request.uri.queryParameters["second"] == nil
                    ? nil : try integer(request, "second", default: nil, range: 1...Int64.max)
                let p = try cp.audit.consistencyProof(first: first, second: second)
                return HTTPSupport.json(
                    .ok,
                    .object([
                        ("first", .number(String(first))), ("second", .number(String(p.second))),
                        ("first_root", .string(p.firstRoot.hex)), ("second_root", .string(p.secondRoot.hex)),
                        ("proof", .array(p.proof.map { .string($0.hex) })),
                    ]))
            }
        }
        audit.get("/verify") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
                let result = try cp.verifyAudit()
                return HTTPSupport.json(result.ok ? .ok : .conflict, result.json)
            }
        }
        audit.post("/prune") { request, context in
            await guarded(cp, request, context) { () throws(WardenError) in
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
        var q = AuditLog.Query()
        if let agent = p["agent"].map(String.init) {
            q.agent = agent.hasPrefix("spiffe://") ? agent : (try cp.store.agent(agent)?.spiffeID.description ?? agent)
        }
        if let d = p["decision"].map(String.init) {
            guard let decision = AuditEvent.Decision(rawValue: d) else {
                throw WardenError(.invalidRequest, "decision must be allow or deny")
            }
            q.decision = decision
        }
        if let k = p["kind"].map(String.init) {
            guard let kind = AuditEvent.Kind(rawValue: k) else {
                throw WardenError(.invalidRequest, "kind must be decision, admin, lifecycle or system")
            }
            q.kind = kind
        }
        q.action = p["action"].map(String.init)
        if let since = p["since"].map(String.init) {
            if let seq = Int64(since), seq >= 0 {
                q.after = max(0, seq - 1)
            } else if let t = AuditEvent.parseRFC3339(since) {
                q.since = t
            } else {
                throw WardenError(.invalidRequest, "since must be a sequence number or an RFC 3339 time")
            }
        }
        if let until = p["until"].map(String.init) {
            guard let t = AuditEvent.parseRFC3339(until) else {
                throw WardenError(.invalidRequest, "until must be an RFC 3339 time")
            }
            q.until = t
        }
        if p["after"] != nil { q.after = max(q.after, try integer(request, "after", default: 0, range: 0...Int64.max)) }
        return q
    }
}

extension ControlPlane {
    /// Every key that ever signed audit checkpoints (`keys/*.pub` of the data directory), as a JWKS.
    public func auditKeysJWKS() throws(WardenError) -> JSONValue {
        let keys = try DataDirectory.checkpointKeys(path: dataPath)
        return .object([
            (
                "keys",
                .array(
                    keys.sorted { $0.key < $1.key }.map { kid, key in
                        let jwk = ECPublicJWK(key)
                        return .object([
                            ("kty", .string("EC")), ("crv", .string("P-256")), ("x", .string(Base64URL.encode(jwk.x))),
                            ("y", .string(Base64URL.encode(jwk.y))), ("kid", .string(kid)), ("use", .string("sig")),
                            ("alg", .string("ES256")),
                        ])
                    })
            )
        ])
    }

    /// Verifies the live audit log (a consistent snapshot) with every key that ever signed for this data directory.
    public func verifyAudit(external: [Checkpoint] = []) throws(WardenError) -> AuditVerification {
        let keys = try DataDirectory.checkpointKeys(path: dataPath)
        return try store.read { db in try AuditVerifier.verify(db, keys: keys, external: external) }
    }
}
