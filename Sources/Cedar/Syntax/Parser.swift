/// Parses Cedar policy text into policies and templates.
///
/// The grammar is Cedar's (https://docs.cedarpolicy.com/policies/syntax-grammar.html). Errors carry the line and
/// column of the offending token. Nesting depth is bounded so that hostile input cannot exhaust the stack.
public struct Parser {
    /// The deepest expression nesting accepted.
    public static let maxDepth = 200

    private let source: String
    private let tokens: [Token]
    private var pos = 0
    private var depth = 0

    private init(source: String) throws(CedarError) {
        self.source = source
        self.tokens = try Lexer.tokenize(source)
    }

    /// Parses every policy in `text`. Policies get ids `\(idPrefix)0`, `\(idPrefix)1`, ... in order.
    public static func parsePolicies(_ text: String, idPrefix: String = "policy") throws(CedarError) -> [Policy] {
        var parser = try Parser(source: text)
        var policies: [Policy] = []
        while parser.peek.kind != .end {
            policies.append(try parser.parsePolicy(id: "\(idPrefix)\(policies.count)"))
        }
        return policies
    }

    /// Parses a single expression (used by tests and tools).
    public static func parseExpression(_ text: String) throws(CedarError) -> Expr {
        var parser = try Parser(source: text)
        let e = try parser.parseExpr()
        guard parser.peek.kind == .end else {
            throw parser.error("unexpected \(parser.describe(parser.peek)) after the expression")
        }
        return e
    }

    // MARK: - Token helpers

    private var peek: Token { tokens[pos] }
    private func peek(_ offset: Int) -> Token { tokens[min(pos + offset, tokens.count - 1)] }

    private mutating func advance() -> Token {
        let t = tokens[pos]
        if pos < tokens.count - 1 { pos += 1 }
        return t
    }

    private func location(_ t: Token) -> TextLocation { Lexer.location(of: t.position, in: source) }

    /// The location of a policy's first token. Policies start at increasing positions, so the column is counted
    /// from the previous policy's start when both are on the same line: linear in the input, even for a file of
    /// many policies on one line.
    private var lastPolicyStart: (index: String.Index, line: Int, column: Int)?

    private mutating func policyLocation(_ t: Token) -> TextLocation {
        let p = t.position
        let offset = source.utf8.distance(from: source.utf8.startIndex, to: p.index)
        let column: Int
        if let last = lastPolicyStart, last.line == p.line, last.index <= p.index {
            column = last.column + source.unicodeScalars[last.index..<p.index].count
        } else {
            column = source.unicodeScalars[p.lineStart..<p.index].count + 1
        }
        lastPolicyStart = (p.index, p.line, column)
        return TextLocation(line: p.line, column: column, offset: offset)
    }

    private func error(_ message: String, at token: Token? = nil) -> CedarError {
        CedarError(.parse, message, at: location(token ?? peek))
    }

    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .end: "end of input"
        case .string: "string \(t.text.prefix(40))"
        default: "'\(t.text.prefix(40))'"
        }
    }

    private mutating func expect(_ p: String, _ context: String) throws(CedarError) {
        guard peek.isPunct(p) else { throw error("expected '\(p)' \(context), found \(describe(peek))") }
        pos += 1
    }

    private mutating func eatPunct(_ p: String) -> Bool {
        if peek.isPunct(p) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func eatIdent(_ w: String) -> Bool {
        if peek.isIdent(w) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func enter() throws(CedarError) {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw error("expression nested too deeply (more than \(Self.maxDepth) levels)")
        }
    }

    private mutating func leave() { depth -= 1 }

    /// Counts one more level of a left-nested chain (`a || b || c`, `a.b.c`), which nests the tree as deeply as
    /// parentheses would; the caller releases `chain` levels when the chain ends.
    private mutating func deepen(_ chain: inout Int) throws(CedarError) {
        try enter()
        chain += 1
    }

    // MARK: - Policies

    private mutating func parsePolicy(id: String) throws(CedarError) -> Policy {
        let startToken = peek
        var annotations: [Annotation] = []
        while peek.isPunct("@") {
            let at = advance()
            guard peek.kind == .identifier else { throw error("expected an annotation name after '@'") }
            let key = String(advance().text)
            var value: String? = nil
            if eatPunct("(") {
                guard peek.kind == .string else { throw error("an annotation value must be a string literal") }
                value = try unescape(advance())
                try expect(")", "to close the annotation")
            }
            guard !annotations.contains(where: { $0.key == key }) else {
                throw error("duplicate annotation @\(key)", at: at)
            }
            annotations.append(Annotation(key: key, value: value))
        }
        let effectToken = advance()
        guard effectToken.kind == .identifier, let effect = Effect(rawValue: String(effectToken.text)) else {
            throw error("expected 'permit' or 'forbid', found \(describe(effectToken))", at: effectToken)
        }
        try expect("(", "after '\(effect.rawValue)'")
        let principal = try parseScopeConstraint(variable: .principal, slot: .principal)
        try expect(",", "after the principal constraint")
        let action = try parseActionConstraint()
        try expect(",", "after the action constraint")
        let resource = try parseScopeConstraint(variable: .resource, slot: .resource)
        _ = eatPunct(",")  // a trailing comma is allowed
        try expect(")", "to close the policy scope")
        var conditions: [Condition] = []
        while peek.kind == .identifier, let kind = Condition.Kind(rawValue: String(peek.text)) {
            pos += 1
            try expect("{", "after '\(kind.rawValue)'")
            guard !peek.isPunct("}") else { throw error("a '\(kind.rawValue)' clause needs an expression") }
            let body = try parseExpr()
            try expect("}", "to close the '\(kind.rawValue)' clause")
            conditions.append(Condition(kind, body))
        }
        try expect(";", "at the end of the policy")
        for c in conditions {
            if let slot = c.body.firstSlot {
                throw error("template slot \(slot.rawValue) may only appear in the policy scope", at: startToken)
            }
        }
        return Policy(
            id: id, effect: effect, annotations: annotations, principal: principal, action: action,
            resource: resource, conditions: conditions, location: policyLocation(startToken))
    }

    private mutating func parseScopeConstraint(variable: Variable, slot: SlotID) throws(CedarError) -> ScopeConstraint {
        let v = advance()
        guard v.isIdent(variable.rawValue) else {
            throw error("expected '\(variable.rawValue)' in the policy scope, found \(describe(v))", at: v)
        }
        if eatPunct("==") {
            return .equals(try parseEntityReference(slot: slot))
        }
        if eatIdent("is") {
            let type = try parsePath()
            if eatIdent("in") {
                return .isTypeIn(type, try parseEntityReference(slot: slot))
            }
            return .isType(type)
        }
        if eatIdent("in") {
            if peek.isPunct("[") {
                throw error("'\(variable.rawValue) in [...]' is not allowed: only 'action' may be in a list")
            }
            return .in(try parseEntityReference(slot: slot))
        }
        return .any
    }

    private mutating func parseEntityReference(slot: SlotID) throws(CedarError) -> EntityReference {
        if peek.kind == .slot {
            let t = advance()
            guard t.text == slot.rawValue else {
                throw error("slot \(t.text) cannot be used here: use \(slot.rawValue)", at: t)
            }
            return .slot(slot)
        }
        return .entity(try parseEntityUID())
    }

    private mutating func parseActionConstraint() throws(CedarError) -> ActionConstraint {
        let v = advance()
        guard v.isIdent("action") else {
            throw error("expected 'action' in the policy scope, found \(describe(v))", at: v)
        }
        if eatPunct("==") {
            return .equals(try parseActionUID())
        }
        if eatIdent("in") {
            if eatPunct("[") {
                var list: [EntityUID] = []
                if !peek.isPunct("]") {
                    repeat {
                        if peek.isPunct("]") { break }
                        list.append(try parseActionUID())
                    } while eatPunct(",")
                }
                try expect("]", "to close the action list")
                return .inAny(list)
            }
            return .in(try parseActionUID())
        }
        if peek.isIdent("is") { throw error("'action is ...' is not allowed in the policy scope") }
        return .any
    }

    private mutating func parseActionUID() throws(CedarError) -> EntityUID {
        let t = peek
        if t.kind == .slot { throw error("template slots cannot constrain the action") }
        let uid = try parseEntityUID()
        guard uid.type.isAction else {
            throw error("expected an action entity such as Action::\"view\", found \(uid)", at: t)
        }
        return uid
    }

    private mutating func parseEntityUID() throws(CedarError) -> EntityUID {
        guard peek.kind == .identifier else {
            throw error("expected an entity such as User::\"alice\", found \(describe(peek))")
        }
        var parts: [Substring] = []
        while true {
            let t = advance()
            guard t.kind == .identifier else { throw error("expected an identifier, found \(describe(t))", at: t) }
            guard !Name.reserved.contains(String(t.text)) else {
                throw error("'\(t.text)' is a reserved word and cannot be part of an entity type", at: t)
            }
            parts.append(t.text)
            try expect("::", "in the entity reference")
            if peek.kind == .string {
                let id = try unescape(advance())
                return EntityUID(type: EntityType(parts.joined(separator: "::")), id: id)
            }
        }
    }

    private mutating func parsePath() throws(CedarError) -> EntityType {
        var parts: [Substring] = []
        repeat {
            let t = advance()
            guard t.kind == .identifier else {
                throw error("expected an entity type name, found \(describe(t))", at: t)
            }
            guard !Name.reserved.contains(String(t.text)) else {
                throw error("'\(t.text)' is a reserved word and cannot be an entity type", at: t)
            }
            parts.append(t.text)
        } while eatPunct("::")
        return EntityType(parts.joined(separator: "::"))
    }

    /// The text between the quotes of a string token, cut on UTF-8 boundaries (not on grapheme clusters: a
    /// combining mark right after the opening quote would otherwise be taken with it).
    private static func stringBody(_ text: Substring) -> Substring {
        let u = text.utf8
        return Substring(u[u.index(after: u.startIndex)..<u.index(before: u.endIndex)])
    }

    private func unescape(_ t: Token) throws(CedarError) -> String {
        let body = Self.stringBody(t.text)
        switch CedarString.unescapeString(body) {
        case .success(let s): return s
        case .failure(let m): throw error("invalid string literal: \(m.message)", at: t)
        }
    }

    // MARK: - Expressions

    mutating func parseExpr() throws(CedarError) -> Expr {
        try enter()
        defer { leave() }
        if eatIdent("if") {
            let c = try parseExpr()
            guard eatIdent("then") else {
                throw error("expected 'then' after the 'if' condition, found \(describe(peek))")
            }
            let a = try parseExpr()
            guard eatIdent("else") else {
                throw error("expected 'else' after the 'then' branch, found \(describe(peek))")
            }
            let b = try parseExpr()
            return .ifThenElse(c, a, b)
        }
        return try parseOr()
    }

    private mutating func parseOr() throws(CedarError) -> Expr {
        var chain = 0
        defer { depth -= chain }
        var lhs = try parseAnd()
        while eatPunct("||") {
            try deepen(&chain)
            lhs = .or(lhs, try parseAnd())
        }
        return lhs
    }

    private mutating func parseAnd() throws(CedarError) -> Expr {
        var chain = 0
        defer { depth -= chain }
        var lhs = try parseRelation()
        while eatPunct("&&") {
            try deepen(&chain)
            lhs = .and(lhs, try parseRelation())
        }
        return lhs
    }

    private static let relOps: [Substring: BinaryOp] = [
        "==": .eq, "!=": .notEq, "<": .less, "<=": .lessEq, ">": .greater, ">=": .greaterEq,
    ]

    private mutating func parseRelation() throws(CedarError) -> Expr {
        let lhs = try parseAdd()
        let t = peek
        if t.kind == .punct, let op = Self.relOps[t.text] {
            pos += 1
            let rhs = try parseAdd()
            try rejectChainedRelation()
            return .binary(op, lhs, rhs)
        }
        if t.isIdent("in") {
            pos += 1
            let rhs = try parseAdd()
            try rejectChainedRelation()
            return .binary(.in, lhs, rhs)
        }
        if t.isIdent("has") {
            pos += 1
            let result = try parseHas(lhs)
            try rejectChainedRelation()
            return result
        }
        if t.isIdent("like") {
            pos += 1
            let p = advance()
            guard p.kind == .string else {
                throw error("expected a pattern string after 'like', found \(describe(p))", at: p)
            }
            switch CedarString.unescape(Self.stringBody(p.text).unicodeScalars, pattern: true) {
            case .failure(let m): throw error("invalid pattern: \(m.message)", at: p)
            case .success(let pieces):
                let elements = pieces.map { piece -> Pattern.Element in
                    switch piece {
                    case .scalar(let c): .literal(c)
                    case .wildcard: .wildcard
                    }
                }
                try rejectChainedRelation()
                return .like(lhs, Pattern(elements))
            }
        }
        if t.isIdent("is") {
            pos += 1
            let type = try parsePath()
            var inExpr: Expr? = nil
            if eatIdent("in") { inExpr = try parseAdd() }
            try rejectChainedRelation()
            return .isType(lhs, type, in: inExpr)
        }
        return lhs
    }

    private func rejectChainedRelation() throws(CedarError) {
        let t = peek
        if (t.kind == .punct && Self.relOps[t.text] != nil)
            || (t.kind == .identifier && ["in", "has", "like", "is"].contains(t.text))
        {
            throw error("comparisons cannot be chained: add parentheses around \(describe(t))'s left side", at: t)
        }
    }

    private mutating func parseHas(_ lhs: Expr) throws(CedarError) -> Expr {
        let t = advance()
        if t.kind == .string {
            return .hasAttr(lhs, try unescape(t))
        }
        guard t.kind == .identifier else {
            throw error("expected an attribute name after 'has', found \(describe(t))", at: t)
        }
        // `e has a.b.c` means `e has a && e.a has b && e.a.b has c`.
        try checkAttributeName(t)
        var path = [String(t.text)]
        var chain = 0
        defer { depth -= chain }
        while peek.isPunct(".") {
            try deepen(&chain)
            pos += 1
            let n = advance()
            guard n.kind == .identifier else {
                throw error("expected an attribute name after '.', found \(describe(n))", at: n)
            }
            try checkAttributeName(n)
            path.append(String(n.text))
        }
        var result: Expr = .hasAttr(lhs, path[0])
        var base = lhs
        for i in 1..<path.count {
            base = .getAttr(base, path[i - 1])
            result = .and(result, .hasAttr(base, path[i]))
        }
        return result
    }

    /// Attribute names written as identifiers cannot be reserved words (quote them: `e["if"]`, `e has "if"`).
    private func checkAttributeName(_ t: Token) throws(CedarError) {
        let word = String(t.text)
        guard !Name.reserved.contains(word) else {
            throw error("'\(word)' is a reserved word: write e[\"\(word)\"] or e has \"\(word)\" instead", at: t)
        }
    }

    private mutating func parseAdd() throws(CedarError) -> Expr {
        var chain = 0
        defer { depth -= chain }
        var lhs = try parseMult()
        while true {
            if eatPunct("+") {
                try deepen(&chain)
                lhs = .binary(.add, lhs, try parseMult())
            } else if eatPunct("-") {
                try deepen(&chain)
                lhs = .binary(.sub, lhs, try parseMult())
            } else {
                return lhs
            }
        }
    }

    private mutating func parseMult() throws(CedarError) -> Expr {
        var chain = 0
        defer { depth -= chain }
        var lhs = try parseUnary()
        while true {
            if eatPunct("*") {
                try deepen(&chain)
                lhs = .binary(.mul, lhs, try parseUnary())
            } else if peek.isPunct("/") || peek.isPunct("%") {
                throw error("Cedar has no '\(peek.text)' operator")
            } else {
                return lhs
            }
        }
    }

    private mutating func parseUnary() throws(CedarError) -> Expr {
        var ops: [Token] = []
        while peek.isPunct("!") || peek.isPunct("-") {
            ops.append(advance())
        }
        guard ops.count <= 4 else { throw error("too many unary operators in a row (at most 4)", at: ops[4]) }
        if let first = ops.first, ops.contains(where: { $0.text != first.text }) {
            throw error("'!' and '-' cannot be mixed in one chain of unary operators: add parentheses", at: first)
        }
        var e: Expr
        if let last = ops.last, last.isPunct("-"), peek.kind == .integer, !peek(1).isPunct("."), !peek(1).isPunct("[") {
            // A minus directly before an integer literal is part of the literal, so that the smallest Long parses.
            let t = advance()
            guard let v = Int64("-" + t.text) else { throw error("integer literal -\(t.text) is out of range", at: t) }
            ops.removeLast()
            e = .literal(.long(v))
        } else {
            e = try parseMember()
        }
        for op in ops.reversed() {
            e = op.isPunct("!") ? .not(e) : .negate(e)
        }
        return e
    }

    private mutating func parseMember() throws(CedarError) -> Expr {
        try parseAccessChain(try parsePrimary())
    }

    private mutating func parseAccessChain(_ base: Expr) throws(CedarError) -> Expr {
        var chain = 0
        defer { depth -= chain }
        var e = base
        while true {
            if peek.isPunct(".") || peek.isPunct("[") { try deepen(&chain) }
            if eatPunct(".") {
                let name = advance()
                guard name.kind == .identifier else {
                    throw error("expected an attribute or method name after '.', found \(describe(name))", at: name)
                }
                if peek.isPunct("(") {
                    pos += 1
                    let args = try parseExprList(closing: ")")
                    e = try makeMethodCall(e, name, args)
                } else {
                    try checkAttributeName(name)
                    e = .getAttr(e, String(name.text))
                }
            } else if peek.isPunct("[") {
                pos += 1
                let t = advance()
                guard t.kind == .string else { throw error("expected a string attribute name inside '[...]'", at: t) }
                let key = try unescape(t)
                try expect("]", "to close the attribute access")
                e = .getAttr(e, key)
            } else {
                return e
            }
        }
    }

    private func makeMethodCall(_ receiver: Expr, _ name: Token, _ args: [Expr]) throws(CedarError) -> Expr {
        func arity(_ n: Int) throws(CedarError) {
            guard args.count == n else {
                throw error(
                    "method '\(name.text)' takes \(n) argument\(n == 1 ? "" : "s"), but \(args.count) were given",
                    at: name)
            }
        }
        switch name.text {
        case "contains":
            try arity(1)
            return .binary(.contains, receiver, args[0])
        case "containsAll":
            try arity(1)
            return .binary(.containsAll, receiver, args[0])
        case "containsAny":
            try arity(1)
            return .binary(.containsAny, receiver, args[0])
        case "hasTag":
            try arity(1)
            return .binary(.hasTag, receiver, args[0])
        case "getTag":
            try arity(1)
            return .binary(.getTag, receiver, args[0])
        case "isEmpty":
            try arity(0)
            return .isEmpty(receiver)
        default:
            guard let f = ExtensionFunction(rawValue: String(name.text)), !f.isConstructor else {
                throw error("'\(name.text)' is not a Cedar method", at: name)
            }
            return .call(f, [receiver] + args)
        }
    }

    private mutating func parseExprList(closing: String) throws(CedarError) -> [Expr] {
        var list: [Expr] = []
        if eatPunct(closing) { return list }
        repeat {
            if peek.isPunct(closing) { break }  // a trailing comma is allowed
            list.append(try parseExpr())
        } while eatPunct(",")
        try expect(closing, "to close the list")
        return list
    }

    private mutating func parsePrimary() throws(CedarError) -> Expr {
        try enter()
        defer { leave() }
        let t = peek
        switch t.kind {
        case .integer:
            pos += 1
            guard let v = Int64(t.text) else { throw error("integer literal \(t.text) is out of range", at: t) }
            return .literal(.long(v))
        case .string:
            pos += 1
            return .literal(.string(try unescape(t)))
        case .slot:
            pos += 1
            return .slot(t.text == "?principal" ? .principal : .resource)
        case .end:
            throw error("unexpected end of input: an expression is missing")
        case .punct:
            if eatPunct("(") {
                let e = try parseExpr()
                try expect(")", "to close the parenthesis")
                return e
            }
            if eatPunct("[") {
                var list: [Expr] = []
                repeat {
                    if peek.isPunct("]") { break }
                    list.append(try parseExpr())
                } while eatPunct(",")
                try expect("]", "to close the set")
                return .set(list)
            }
            if eatPunct("{") {
                return try parseRecord()
            }
            throw error("unexpected \(describe(t)): expected an expression", at: t)
        case .identifier:
            if t.isIdent("true") || t.isIdent("false") {
                pos += 1
                return .literal(.bool(t.text == "true"))
            }
            if peek(1).isPunct("::") {
                // An entity reference `A::B::"id"` or a namespaced function name `A::f(...)`.
                var look = pos
                while tokens[look].kind == .identifier && tokens[look + 1].isPunct("::") { look += 2 }
                if tokens[look].kind == .string {
                    return .literal(.entity(try parseEntityUID()))
                }
                let path = try parsePath()
                throw error("'\(path)' is not a known function or entity reference", at: t)
            }
            if peek(1).isPunct("(") {
                pos += 2
                let args = try parseExprList(closing: ")")
                guard let f = ExtensionFunction(rawValue: String(t.text)), f.isConstructor else {
                    if ExtensionFunction(rawValue: String(t.text)) != nil
                        || ["contains", "containsAll", "containsAny", "isEmpty", "hasTag", "getTag"].contains(t.text)
                    {
                        throw error("'\(t.text)' is a method: call it as 'x.\(t.text)(...)'", at: t)
                    }
                    throw error("'\(t.text)' is not a Cedar function", at: t)
                }
                return .call(f, args)
            }
            if let v = Variable(rawValue: String(t.text)) {
                pos += 1
                return .variable(v)
            }
            throw error(
                "unknown identifier '\(t.text)': expected principal, action, resource, context or a literal", at: t)
        }
    }

    private mutating func parseRecord() throws(CedarError) -> Expr {
        var entries: [Expr.RecordEntry] = []
        var seen = Set<String>()
        if eatPunct("}") { return .record(entries) }
        repeat {
            if peek.isPunct("}") { break }
            let k = advance()
            let key: String
            switch k.kind {
            case .identifier:
                guard !Name.reserved.contains(String(k.text)) else {
                    throw error("'\(k.text)' is a reserved word: quote it to use it as a record key", at: k)
                }
                key = String(k.text)
            case .string: key = try unescape(k)
            default: throw error("expected a record key (an identifier or a string), found \(describe(k))", at: k)
            }
            try expect(":", "after the record key")
            let value = try parseExpr()
            guard seen.insert(key).inserted else { throw error("duplicate key \"\(key)\" in record literal", at: k) }
            entries.append(Expr.RecordEntry(key, value))
        } while eatPunct(",")
        try expect("}", "to close the record")
        return .record(entries)
    }
}
