/// The four request variables.
public enum Variable: String, Sendable, Hashable, CaseIterable {
    case principal, action, resource, context
}

/// A template slot.
public enum SlotID: String, Sendable, Hashable {
    case principal = "?principal"
    case resource = "?resource"
}

/// Binary operators.
public enum BinaryOp: String, Sendable, Hashable {
    case eq = "=="
    case notEq = "!="
    case less = "<"
    case lessEq = "<="
    case greater = ">"
    case greaterEq = ">="
    case add = "+"
    case sub = "-"
    case mul = "*"
    case `in` = "in"
    case contains
    case containsAll
    case containsAny
    case hasTag
    case getTag
}

/// Extension functions and methods (Cedar's `ip`, `decimal`, `datetime` and `duration` families).
public enum ExtensionFunction: String, Sendable, Hashable, CaseIterable {
    case ip, decimal, datetime, duration
    case isIpv4, isIpv6, isLoopback, isMulticast, isInRange
    case lessThan, lessThanOrEqual, greaterThan, greaterThanOrEqual
    case offset, durationSince, toDate, toTime
    case toMilliseconds, toSeconds, toMinutes, toHours, toDays

    /// Whether this is called as a function (`ip("...")`) rather than as a method (`x.isIpv4()`).
    public var isConstructor: Bool {
        switch self {
        case .ip, .decimal, .datetime, .duration: true
        default: false
        }
    }

    /// The number of arguments, counting the receiver of a method.
    public var arity: Int {
        switch self {
        case .ip, .decimal, .datetime, .duration: 1
        case .isIpv4, .isIpv6, .isLoopback, .isMulticast, .toDate, .toTime: 1
        case .toMilliseconds, .toSeconds, .toMinutes, .toHours, .toDays: 1
        case .isInRange, .lessThan, .lessThanOrEqual, .greaterThan, .greaterThanOrEqual: 2
        case .offset, .durationSince: 2
        }
    }
}

/// A `like` pattern: literal Unicode scalars and `*` wildcards.
public struct Pattern: Sendable, Hashable {
    /// One element of a pattern.
    public enum Element: Sendable, Hashable {
        case literal(Unicode.Scalar)
        case wildcard
    }
    /// The elements, in order.
    public let elements: [Element]

    public init(_ elements: [Element]) { self.elements = elements }

    /// Whether `text` matches the whole pattern (`*` matches any sequence, including none). Compares Unicode
    /// scalars; greedy with a single backtrack point, so O(n·m) at worst and no allocation.
    public func matches(_ text: String) -> Bool {
        let s = text.unicodeScalars
        var si = s.startIndex
        var pi = 0
        var starP = -1
        var starS = s.startIndex
        let p = elements
        while si < s.endIndex {
            if pi < p.count, case .literal(let c) = p[pi], c == s[si] {
                s.formIndex(after: &si)
                pi += 1
            } else if pi < p.count, case .wildcard = p[pi] {
                starP = pi
                starS = si
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                s.formIndex(after: &starS)
                si = starS
            } else {
                return false
            }
        }
        while pi < p.count, case .wildcard = p[pi] { pi += 1 }
        return pi == p.count
    }
}

/// A Cedar expression.
public indirect enum Expr: Sendable, Hashable {
    /// A literal value (Bool, Long, String or entity reference).
    case literal(Value)
    /// `principal`, `action`, `resource` or `context`.
    case variable(Variable)
    /// `?principal` or `?resource` (templates only).
    case slot(SlotID)
    /// `!e`
    case not(Expr)
    /// `-e`
    case negate(Expr)
    /// `a && b` (short-circuit)
    case and(Expr, Expr)
    /// `a || b` (short-circuit)
    case or(Expr, Expr)
    /// `if c then a else b`
    case ifThenElse(Expr, Expr, Expr)
    /// Binary operators and the built-in two-argument methods.
    case binary(BinaryOp, Expr, Expr)
    /// `e.attr` or `e["attr"]`
    case getAttr(Expr, String)
    /// `e has attr`
    case hasAttr(Expr, String)
    /// `e like "pat*"`
    case like(Expr, Pattern)
    /// `e is T` or `e is T in x`
    case isType(Expr, EntityType, in: Expr?)
    /// `e.isEmpty()`
    case isEmpty(Expr)
    /// `[a, b, ...]`
    case set([Expr])
    /// `{a: e, "b": f}` (keys unique, in source order)
    case record([RecordEntry])
    /// An extension function or method call; a method's receiver is the first argument.
    case call(ExtensionFunction, [Expr])

    /// One field of a record literal.
    public struct RecordEntry: Sendable, Hashable {
        public let key: String
        public let value: Expr
        public init(_ key: String, _ value: Expr) {
            self.key = key
            self.value = value
        }
    }
}

extension Expr {
    /// The direct sub-expressions, in order.
    public var children: [Expr] {
        switch self {
        case .literal, .variable, .slot: []
        case .not(let a), .negate(let a), .getAttr(let a, _), .hasAttr(let a, _), .like(let a, _), .isEmpty(let a): [a]
        case .isType(let a, _, let b): [a] + (b.map { [$0] } ?? [])
        case .and(let a, let b), .or(let a, let b), .binary(_, let a, let b): [a, b]
        case .ifThenElse(let a, let b, let c): [a, b, c]
        case .set(let es), .call(_, let es): es
        case .record(let es): es.map(\.value)
        }
    }

    /// The first template slot in the expression, if any (slots may only appear in a policy's scope).
    public var firstSlot: SlotID? {
        if case .slot(let s) = self { return s }
        return children.lazy.compactMap(\.firstSlot).first
    }
}

/// The effect of a policy.
public enum Effect: String, Sendable, Hashable {
    case permit, forbid
}

/// A reference in a principal or resource scope: a concrete entity or a template slot.
public enum EntityReference: Sendable, Hashable {
    case entity(EntityUID)
    case slot(SlotID)
}

/// The principal or resource part of a policy scope.
public enum ScopeConstraint: Sendable, Hashable {
    /// No constraint.
    case any
    /// `principal == E`
    case equals(EntityReference)
    /// `principal in E`
    case `in`(EntityReference)
    /// `principal is T`
    case isType(EntityType)
    /// `principal is T in E`
    case isTypeIn(EntityType, EntityReference)

    var slot: SlotID? {
        switch self {
        case .equals(.slot(let s)), .in(.slot(let s)), .isTypeIn(_, .slot(let s)): s
        default: nil
        }
    }
}

/// The action part of a policy scope.
public enum ActionConstraint: Sendable, Hashable {
    /// No constraint.
    case any
    /// `action == A`
    case equals(EntityUID)
    /// `action in A`
    case `in`(EntityUID)
    /// `action in [A, B]`
    case inAny([EntityUID])
}

/// A `when` or `unless` clause.
public struct Condition: Sendable, Hashable {
    /// `when` or `unless`.
    public enum Kind: String, Sendable, Hashable {
        case when, unless
    }
    public let kind: Kind
    public let body: Expr

    public init(_ kind: Kind, _ body: Expr) {
        self.kind = kind
        self.body = body
    }
}

/// One annotation, `@key("value")`.
public struct Annotation: Sendable, Hashable {
    public let key: String
    /// The value; nil for an annotation written without one (`@advice`).
    public let value: String?
    public init(key: String, value: String?) {
        self.key = key
        self.value = value
    }
}

/// A Cedar policy or template (a template has slots in its scope).
public struct Policy: Sendable, Hashable {
    /// The policy id (`policy0`, `policy1`, ... in file order unless given otherwise).
    public var id: String
    public var effect: Effect
    /// Annotations in source order.
    public var annotations: [Annotation]
    public var principal: ScopeConstraint
    public var action: ActionConstraint
    public var resource: ScopeConstraint
    public var conditions: [Condition]
    /// Where the policy starts in its source text, when parsed from text.
    public var location: TextLocation?

    public init(
        id: String, effect: Effect, annotations: [Annotation] = [], principal: ScopeConstraint = .any,
        action: ActionConstraint = .any, resource: ScopeConstraint = .any, conditions: [Condition] = [],
        location: TextLocation? = nil
    ) {
        self.id = id
        self.effect = effect
        self.annotations = annotations
        self.principal = principal
        self.action = action
        self.resource = resource
        self.conditions = conditions
        self.location = location
    }

    /// Whether this is a template (it has a `?principal` or `?resource` slot).
    public var isTemplate: Bool { principal.slot != nil || resource.slot != nil }

    /// The value of annotation `key`, if present.
    public func annotation(_ key: String) -> String? {
        annotations.first { $0.key == key }.map { $0.value ?? "" }
    }
}
