import Cedar
import Foundation
import GRPCCore
import Logging
import SwiftProtobuf
import WardenCore
import WardenIdentity

/// The SPIFFE Workload API (X.509-SVID and JWT-SVID profiles) over the node's unix socket. Every call must carry the
/// `workload.spiffe.io: true` header (else `InvalidArgument`, as the specification requires), and is attested by the
/// kernel's account of its connection (``PeerRegistry``, ``WorkloadAttestor``), never by anything the caller says. A
/// caller entitled to no identity gets `PermissionDenied`. Streams send again whenever the node's snapshot changes
/// (SVID rotation, an agent added, quarantined or revoked, new bundle keys), and end with `PermissionDenied` when the
/// caller is no longer entitled to anything.
package struct WorkloadAPI: SpiffeWorkloadAPI.ServiceProtocol {
    let node: NodeAgent
    let peers: PeerRegistry
    let logger: Logger

    package init(node: NodeAgent, peers: PeerRegistry, logger: Logger) {
        self.node = node
        self.peers = peers
        self.logger = logger
    }

    /// The caller's selectors; throws the Workload API's errors.
    func attest(_ metadata: Metadata, method: String) throws -> Set<String> {
        try attestPeer(metadata, method: method).1
    }

    /// The caller's connection and selectors; throws the Workload API's errors.
    func attestPeer(_ metadata: Metadata, method: String) throws -> (WorkloadPeer, Set<String>) {
        guard Array(metadata[stringValues: "workload.spiffe.io"]).contains("true") else {
            throw RPCError(code: .invalidArgument, message: "security header missing from request")
        }
        guard let raw = Array(metadata[stringValues: PeerRegistry.header]).last, let id = UInt64(raw),
            let peer = peers.peer(id)
        else {
            throw RPCError(code: .permissionDenied, message: "no identity issued")
        }
        return (peer, try reattest(peer, method: method))
    }

    /// The selectors of `peer`'s process now: a stream checks again before every update, so a connection handed to
    /// another process (its attested process gone) stops receiving SVIDs.
    func reattest(_ peer: WorkloadPeer, method: String) throws -> Set<String> {
        switch peers.attestor.selectors(of: peer) {
        case .success(let selectors): return selectors
        case .failure(let why):
            logger.notice(
                "workload not attested",
                metadata: ["method": "\(method)", "pid": "\(peer.pid)", "uid": "\(peer.uid)", "reason": "\(why)"])
            throw RPCError(code: .permissionDenied, message: "no identity issued")
        }
    }

    /// The entries the caller is entitled to (at least one), once the node has synced.
    func entitled(_ selectors: Set<String>, _ snapshot: NodeAgent.Snapshot, method: String) throws -> [NodeAgent.Entry]
    {
        guard snapshot.ready else { throw RPCError(code: .unavailable, message: "the node has not synced yet") }
        let entries = snapshot.entries(matching: selectors)
        guard !entries.isEmpty else {
            logger.notice(
                "workload matches no agent",
                metadata: ["method": "\(method)", "selectors": "\(selectors.sorted().joined(separator: " "))"])
            throw RPCError(code: .permissionDenied, message: "no identity issued")
        }
        return entries
    }

    func x509Response(_ entries: [NodeAgent.Entry], _ s: NodeAgent.Snapshot) -> X509SVIDResponse? {
        var r = X509SVIDResponse()
        for e in entries {
            guard let i = s.identities[e.name] else { continue }
            var svid = X509SVID()
            svid.spiffeID = i.spiffeID
            svid.x509Svid = Data(i.chainDER)
            svid.x509SvidKey = Data(i.keyDER)
            svid.bundle = Data(s.bundleDER)
            svid.hint = e.name
            r.svids.append(svid)
        }
        return r.svids.isEmpty ? nil : r
    }

    /// A Workload API stream: the caller attested, then the message `make` builds from the snapshot and the
    /// entries the caller is entitled to, sent at once and again whenever it changes. Before every update the caller
    /// is attested again and must still be entitled; otherwise the stream ends with `PermissionDenied`. `make`
    /// returning nil skips an update (an SVID not issued yet); the first message must exist (`Unavailable`).
    func stream<M: Equatable & Sendable>(
        _ metadata: Metadata, method: String,
        _ make: @escaping @Sendable (NodeAgent.Snapshot, [NodeAgent.Entry]) -> M?
    ) throws -> StreamingServerResponse<M> {
        let (peer, selectors) = try attestPeer(metadata, method: method)
        let changes = node.changes()
        let first = node.snapshot
        guard let initial = make(first, try entitled(selectors, first, method: method)) else {
            throw RPCError(code: .unavailable, message: "the SVID is not available yet")
        }
        return StreamingServerResponse { writer in
            try await writer.write(initial)
            var last = initial
            for await _ in changes {
                guard try reattest(peer, method: method) == selectors else {
                    throw RPCError(code: .permissionDenied, message: "no identity issued")
                }
                let s = node.snapshot
                guard let r = make(s, try entitled(selectors, s, method: method)), r != last else { continue }
                try await writer.write(r)
                last = r
            }
            return [:]
        }
    }

    package func fetchX509SVID(request: ServerRequest<X509SVIDRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<X509SVIDResponse>
    {
        try stream(request.metadata, method: "FetchX509SVID") { s, entries in x509Response(entries, s) }
    }

    package func fetchX509Bundles(request: ServerRequest<X509BundlesRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<X509BundlesResponse>
    {
        try stream(request.metadata, method: "FetchX509Bundles") { s, _ in
            var r = X509BundlesResponse()
            r.bundles = [s.trustDomainID: Data(s.bundleDER)]
            return r
        }
    }

    package func fetchJWTSVID(request: ServerRequest<JWTSVIDRequest>, context: ServerContext) async throws
        -> ServerResponse<JWTSVIDResponse>
    {
        let selectors = try attest(request.metadata, method: "FetchJWTSVID")
        let audiences = request.message.audience
        guard !audiences.isEmpty else { throw RPCError(code: .invalidArgument, message: "audience must be specified") }
        guard audiences.count <= 8, audiences.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 512 }) else {
            throw RPCError(code: .invalidArgument, message: "at most 8 audiences of 1 to 512 bytes")
        }
        var entries = try entitled(selectors, node.snapshot, method: "FetchJWTSVID")
        let wanted = request.message.spiffeID
        if !wanted.isEmpty {
            entries = entries.filter { $0.spiffeID == wanted }
            guard !entries.isEmpty else { throw RPCError(code: .permissionDenied, message: "no identity issued") }
        }
        var r = JWTSVIDResponse()
        for e in entries {
            let token: String
            do {
                token = try await node.jwtSVID(for: e, audiences: audiences)
            } catch {
                logger.warning("JWT-SVID not issued", metadata: ["agent": "\(e.name)", "error": "\(error)"])
                throw RPCError(code: .unavailable, message: "could not fetch JWT-SVID")
            }
            var svid = JWTSVID()
            svid.spiffeID = e.spiffeID
            svid.svid = token
            svid.hint = e.name
            r.svids.append(svid)
        }
        return ServerResponse(message: r)
    }

    package func fetchJWTBundles(request: ServerRequest<JWTBundlesRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<JWTBundlesResponse>
    {
        try stream(request.metadata, method: "FetchJWTBundles") { s, _ in
            var r = JWTBundlesResponse()
            r.bundles = [s.trustDomainID: Data(s.jwksJSON)]
            return r
        }
    }

    package func validateJWTSVID(request: ServerRequest<ValidateJWTSVIDRequest>, context: ServerContext) async throws
        -> ServerResponse<ValidateJWTSVIDResponse>
    {
        let selectors = try attest(request.metadata, method: "ValidateJWTSVID")
        let s = node.snapshot
        _ = try entitled(selectors, s, method: "ValidateJWTSVID")
        let m = request.message
        guard !m.audience.isEmpty else { throw RPCError(code: .invalidArgument, message: "audience must be specified") }
        guard !m.svid.isEmpty else { throw RPCError(code: .invalidArgument, message: "svid must be specified") }
        let verified: WardenIdentity.JWTSVID.Verified
        do throws(WardenError) {
            verified = try WardenIdentity.JWTSVID.verify(
                m.svid, audience: m.audience, now: node.clock(), trustDomain: s.trustDomain,
                key: { kid in s.jwtKeys[kid] })
        } catch {
            throw RPCError(code: .invalidArgument, message: error.message)
        }
        var r = ValidateJWTSVIDResponse()
        r.spiffeID = verified.subject.description
        if case .structValue(let claims) = Self.protobufValue(verified.claims).kind { r.claims = claims }
        return ServerResponse(message: r)
    }

    /// A JSON value as a `google.protobuf.Value`.
    static func protobufValue(_ v: JSONValue) -> Google_Protobuf_Value {
        switch v {
        case .null: return Google_Protobuf_Value(nilLiteral: ())
        case .bool(let b): return Google_Protobuf_Value(boolValue: b)
        case .number(let n): return Google_Protobuf_Value(numberValue: Double(n) ?? 0)
        case .string(let s): return Google_Protobuf_Value(stringValue: s)
        case .array(let items):
            return Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: items.map(protobufValue)))
        case .object(let pairs):
            var fields: [String: Google_Protobuf_Value] = [:]
            for (k, v) in pairs { fields[k] = protobufValue(v) }
            return Google_Protobuf_Value(structValue: Google_Protobuf_Struct(fields: fields))
        }
    }
}
