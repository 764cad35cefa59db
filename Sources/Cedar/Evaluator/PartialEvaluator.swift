/// Evaluates Cedar expressions for a request some of whose context values are not known yet (the per-call values
/// of a request that has not been made), with three-valued residual semantics.
///
/// An unknown context key is present in the context; only its value is unknown. Any expression that depends on an
/// unknown value is unknown (it may be any value, or an error), except where a short-circuit decides anyway:
/// `false && x` is false and `true || x` is true whatever `x` is, while `unknown && x`, `unknown || x` and
/// `if unknown then a else b` are unknown. An error that is raised whatever the unknowns are is thrown, with the
/// concrete evaluator's message: every operation on known values is the concrete evaluator's own, so a request with no
/// unknown keys evaluates exactly as ``Evaluator`` evaluates it.
struct PartialEvaluator {
    /// A value, or "depends on the unknowns".
    enum Residual: Hashable {
        case known(Value)
        case unknown
    }

    /// What a policy's conditions come to.
    enum Outcome: Equatable {
        /// Every condition holds, whatever the unknowns are.
        case satisfied
        /// A condition fails (or, after only holding ones, errors), whatever the unknowns are.
        case notSatisfied
        case error(CedarError)
        /// Depends on the unknowns. `canBeSatisfied` is false when a later condition is definitely false or errors,
        /// so the policy never applies, though whether it errors may depend on the unknowns.
        case residual(canBeSatisfied: Bool)
    }

    let evaluator: Evaluator
    let unknownKeys: Set<String>

    init(request: Request, unknownContextKeys: Set<String>, entities: Entities) {
        self.evaluator = Evaluator(request: request, entities: entities)
        self.unknownKeys = unknownContextKeys
    }

    /// Evaluates a policy's conditions in order, as ``Evaluator/conditionsHold(_:)`` does.
    func conditions(_ conditions: [Condition]) -> Outcome {
        var residual = false
        for c in conditions {
            let holds: Bool
            do throws(CedarError) {
                guard case .known(let v) = try evaluate(c.body) else {
                    residual = true
                    continue
                }
                // The concrete check, for its type error.
                holds = try evaluator.conditionsHold([Condition(c.kind, .literal(v))])
            } catch {
                return residual ? .residual(canBeSatisfied: false) : .error(error)
            }
            if !holds { return residual ? .residual(canBeSatisfied: false) : .notSatisfied }
        }
        return residual ? .residual(canBeSatisfied: true) : .satisfied
    }

    /// Evaluates an expression; throws only errors that do not depend on the unknowns.
    func evaluate(_ e: Expr) throws(CedarError) -> Residual {
        switch e {
        case .literal(let v):
            return .known(v)
        case .variable(.context):
            return unknownKeys.isEmpty ? .known(evaluator.context) : .unknown
        case .variable, .slot:
            return .known(try evaluator.evaluate(e))
        case .getAttr(.variable(.context), let name) where unknownKeys.contains(name):
            return .unknown
        case .hasAttr(.variable(.context), let name) where unknownKeys.contains(name):
            return .known(.bool(true))
        case .getAttr(.variable, _), .hasAttr(.variable, _):
            // Known context keys, and the principal's and resource's attributes (the concrete fast path).
            return .known(try evaluator.evaluate(e))
        case .not(let a):
            return try unary(a) { .not($0) }
        case .negate(let a):
            return try unary(a) { .negate($0) }
        case .getAttr(let a, let name):
            return try unary(a) { .getAttr($0, name) }
        case .hasAttr(let a, let name):
            return try unary(a) { .hasAttr($0, name) }
        case .like(let a, let pattern):
            return try unary(a) { .like($0, pattern) }
        case .isEmpty(let a):
            return try unary(a) { .isEmpty($0) }
        case .and(let a, let b):
            guard case .known(let x) = try evaluate(a) else { return .unknown }
            // `false && _` without evaluating the right side; a non-Bool left side is the concrete error.
            guard try evaluator.evaluate(.and(.literal(x), .literal(.bool(true)))) == .bool(true) else {
                return .known(.bool(false))
            }
            return try unary(b) { .and(.literal(.bool(true)), $0) }
        case .or(let a, let b):
            guard case .known(let x) = try evaluate(a) else { return .unknown }
            guard try evaluator.evaluate(.or(.literal(x), .literal(.bool(false)))) == .bool(false) else {
                return .known(.bool(true))
            }
            return try unary(b) { .or(.literal(.bool(false)), $0) }
        case .ifThenElse(let c, let a, let b):
            guard case .known(let x) = try evaluate(c) else { return .unknown }
            let taken = try evaluator.evaluate(.ifThenElse(.literal(x), .literal(.bool(true)), .literal(.bool(false))))
            return try evaluate(taken == .bool(true) ? a : b)
        case .binary(let op, let a, let b):
            // Both sides are evaluated (in order) whatever they are, so a definite error on either side stands.
            let x = try evaluate(a)
            let y = try evaluate(b)
            guard case .known(let u) = x, case .known(let v) = y else { return .unknown }
            return .known(try evaluator.binary(op, u, v))
        case .isType(let a, let type, let inExpr):
            guard case .known(let x) = try evaluate(a) else { return .unknown }
            let isType = try evaluator.evaluate(.isType(.literal(x), type, in: nil))
            guard isType == .bool(true), let inExpr else { return .known(isType) }
            guard case .known(let y) = try evaluate(inExpr) else { return .unknown }
            return .known(try evaluator.binary(.in, x, y))
        case .set(let es):
            guard let values = try all(es) else { return .unknown }
            return .known(try evaluator.evaluate(.set(values.map(Expr.literal))))
        case .record(let entries):
            guard let values = try all(entries.map(\.value)) else { return .unknown }
            let known = zip(entries, values).map { Expr.RecordEntry($0.0.key, .literal($0.1)) }
            return .known(try evaluator.evaluate(.record(known)))
        case .call(let f, let args):
            guard let values = try all(args) else { return .unknown }
            return .known(try evaluator.evaluate(.call(f, values.map(Expr.literal))))
        }
    }

    /// One operand: unknown stays unknown; a known value goes through the concrete evaluator.
    private func unary(_ a: Expr, _ rebuild: (Expr) -> Expr) throws(CedarError) -> Residual {
        guard case .known(let v) = try evaluate(a) else { return .unknown }
        return .known(try evaluator.evaluate(rebuild(.literal(v))))
    }

    /// Every operand, in order (a definite error in any of them stands); nil when one is unknown.
    private func all(_ es: [Expr]) throws(CedarError) -> [Value]? {
        var values: [Value] = []
        values.reserveCapacity(es.count)
        var unknown = false
        for x in es {
            switch try evaluate(x) {
            case .known(let v): values.append(v)
            case .unknown: unknown = true
            }
        }
        return unknown ? nil : values
    }
}
