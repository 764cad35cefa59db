import Cedar
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WardenAudit
import WardenControlPlane
import WardenCore
import WardenIdentity
import WardenInspect
import WardenRisk

/// This front end's use of the pipeline's Decide and Recorder: its context keys, its arguments as Cedar values and
/// its record entries.
extension MCPGateway {
    // MARK: Cedar

    /// Decides `action` on `resource` (in its `ToolServer`) for the caller (``Decide``), with this front end's
    /// context keys: `server`, `protocolVersion`, `approved` (false unless given), and `arguments` when given.
    func decide(
        _ c: MCPCall, action: String, resource: Entity, parent: Entity, context extra: [String: Value]
    ) -> PolicyEngine.Verdict {
        pipeline.decide.run(
            c.caller, source: c.source, action: action, resource: resource.uid, entities: [resource, parent],
            context: Self.context(c, parent: parent, extra))
    }

    /// The context keys a `tools/call` sets per call, on top of what ``decide(_:action:resource:parent:context:)``
    /// sets for every request: the arguments, and `approved` (true when a human approves a held call).
    static let perCallContextKeys: Set<String> = ["arguments", "approved"]

    /// Whether some request like ``decide(_:action:resource:parent:context:)``'s, with the context keys `unknown`
    /// not known yet, may be allowed (Cedar partial evaluation); false when none can be.
    func mayDecide(_ c: MCPCall, action: String, resource: Entity, parent: Entity, unknown: Set<String>) -> Bool {
        pipeline.decide.may(
            c.caller, source: c.source, action: action, resource: resource.uid, entities: [resource, parent],
            unknown: unknown, context: Self.context(c, parent: parent, [:]))
    }

    static func context(_ c: MCPCall, parent: Entity, _ extra: [String: Value]) -> [String: Value] {
        var context = context(era: c.era, server: parent.uid.id)
        for (k, v) in extra { context[k] = v }
        return context
    }

    /// The MCP keys every MCP decision has: `server`, `approved` (false until a human approves), `protocolVersion`.
    static func context(era: String, server: String) -> [String: Value] {
        ["server": .string(server), "approved": .bool(false), "protocolVersion": .string(era)]
    }

    /// Arguments beyond what is given to Cedar whole: entries per object or array, and nesting.
    static let maxArgumentEntries = 1000
    static let maxArgumentDepth = 8

    /// JSON arguments as a Cedar value: objects as records, arrays as sets, numbers by their exact value (integers in
    /// Int64 as longs whatever their spelling, others as their canonical spelling: ``JSONNumber``), nulls left out.
    /// nil when the arguments are larger or deeper than the limits, or a number is out of range: the call is then
    /// refused, never decided on a trimmed copy (a policy must see everything the upstream will).
    static func cedarValue(_ v: JSONValue, depth: Int = 0) -> Value?? {
        guard depth <= maxArgumentDepth else { return nil }
        switch v {
        case .null: return .some(nil)
        case .bool(let b): return .bool(b)
        case .number(let n): return JSONNumber(n).map { $0.cedar }
        case .string(let s): return .string(s)
        case .array(let items):
            guard items.count <= maxArgumentEntries else { return nil }
            var out = Set<Value>()
            for item in items {
                guard let converted = cedarValue(item, depth: depth + 1) else { return nil }
                if let c = converted { out.insert(c) }
            }
            return .set(out)
        case .object(let pairs):
            guard pairs.count <= maxArgumentEntries else { return nil }
            var r: [String: Value] = [:]
            for (k, item) in pairs {
                guard let converted = cedarValue(item, depth: depth + 1) else { return nil }
                if let c = converted { r[k] = c }
            }
            return .record(r)
        }
    }

    static let numberOutOfRange = "a number's exponent has more than \(JSONNumber.maxExponentDigits) digits"

    static let argumentsTooLarge = JSONRPC.RPCError(
        JSONRPC.invalidParams,
        "the arguments are too large for policy evaluation (at most \(maxArgumentEntries) entries per object or array, \(maxArgumentDepth) levels)",
        data: .object([("reason", .string("arguments_too_large"))]))

    // MARK: Audit

    /// The record entry of an MCP call that the risk engine judges (a tool call, resource read or prompt).
    static func judged(_ action: String, _ resource: String, _ details: [(String, String)]) -> Recorder.Entry {
        Recorder.Entry(
            action: action, resource: resource, details: details, risk: Recorder.RiskFeed(.tool, resource: resource))
    }

    /// A refused call through the recorder (its record and risk event), as the JSON-RPC error the agent gets: `code`,
    /// the message, and the reason code in `data.reason`.
    func refused(_ c: MCPCall, _ entry: Recorder.Entry, _ refusal: Refusal, code: Int) -> JSONRPC.RPCError {
        pipeline.recorder.refused(c.call, entry, refusal)
        return JSONRPC.RPCError(
            code, refusal.error.message, data: .object([("reason", .string(refusal.reason.rawValue))]))
    }

    /// Records a decision or an event about the call that the risk engine does not judge (best effort).
    func audit(
        _ c: MCPCall, action: String, resource: String, allowed: Bool?, reason: String?, policies: [String] = [],
        message: String? = nil, details: [(String, String)]
    ) {
        pipeline.recorder.note(
            c.call, Recorder.Entry(action: action, resource: resource, details: details),
            decision: allowed.map { $0 ? .allow : .deny }, reason: reason, policies: policies, message: message)
    }
}
