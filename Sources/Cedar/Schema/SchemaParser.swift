/// The human-readable schema syntax (`.cedarschema`):
///
///     Schema     := {Namespace | Decl}
///     Namespace  := Annotations 'namespace' Path '{' {Decl} '}'
///     Decl       := Annotations (Entity | Action | TypeDecl)
///     Entity     := 'entity' Names ['in' EntOrTypes] (['='] RecType | 'enum' '[' STR {',' STR} ']')? ['tags' Type] ';'
///     Action     := 'action' Names ['in' ActionRefs] ['appliesTo' '{' AppDecls '}'] ';'
///     TypeDecl   := 'type' IDENT '=' Type ';'
///     AppDecls   := ('principal' | 'resource') ':' EntOrTypes | 'context' ':' (Path | RecType), comma-separated
///     Type       := Path | 'Set' '<' Type '>' | RecType
///     RecType    := '{' [Annotations Name ['?'] ':' Type {',' ...}] [','] '}'
///
/// Annotations (`@doc("...")`) are read and ignored. Errors carry line and column.
extension Schema {
    /// Parses a schema in the human-readable syntax; `file` names it in errors.
    public init(text: String, file: String = "schema") throws(CedarError) {
        var p = try SchemaTextParser(source: text, file: file)
        self = try p.parse().resolve()
    }
}

struct SchemaTextParser {
    static let maxDepth = 64
    let source: String
    let file: String
    let tokens: [Token]
    var pos = 0
    var depth = 0
    var decls = SchemaDeclarations()

    init(source: String, file: String) throws(CedarError) {
        self.source = source
        self.file = file
        do {
            tokens = try Lexer.tokenize(source, schema: true)
        } catch {
            throw CedarError(.schema, "\(file): \(error.message)", at: error.location)
        }
    }

    var peek: Token { tokens[pos] }
    func peek(_ offset: Int) -> Token { tokens[min(pos + offset, tokens.count - 1)] }
    mutating func advance() -> Token {
        let t = tokens[pos]
        if pos < tokens.count - 1 { pos += 1 }
        return t
    }
    func location(_ t: Token) -> TextLocation { Lexer.location(of: t.position, in: source) }
    func error(_ message: String, _ t: Token? = nil) -> CedarError {
        let at = t ?? peek
        return CedarError(.schema, "\(file): \(message)", at: location(at))
    }
    func describe(_ t: Token) -> String { t.kind == .end ? "the end of the schema" : "'\(t.text.prefix(40))'" }

    mutating func expect(_ punct: String) throws(CedarError) {
        guard peek.isPunct(punct) else { throw error("expected '\(punct)', found \(describe(peek))") }
        _ = advance()
    }

    mutating func eat(_ punct: String) -> Bool {
        guard peek.isPunct(punct) else { return false }
        _ = advance()
        return true
    }

    mutating func identifier(_ what: String) throws(CedarError) -> String {
        guard peek.kind == .identifier else { throw error("expected \(what), found \(describe(peek))") }
        return String(advance().text)
    }

    /// A string literal's value.
    mutating func string(_ what: String) throws(CedarError) -> String {
        guard peek.kind == .string else { throw error("expected \(what) (a string), found \(describe(peek))") }
        let t = advance()
        switch CedarString.unescapeString(t.text.dropFirst().dropLast()) {
        case .success(let s): return s
        case .failure: throw error("invalid escape in a string", t)
        }
    }

    /// An identifier or a string (attribute and action names may be either).
    mutating func name(_ what: String) throws(CedarError) -> String {
        peek.kind == .string ? try string(what) : try identifier(what)
    }

    /// `A::B::C`.
    mutating func path(_ what: String) throws(CedarError) -> String {
        var parts = [try identifier(what)]
        while peek.isPunct("::") && peek(1).kind == .identifier {
            _ = advance()
            parts.append(String(advance().text))
        }
        return parts.joined(separator: "::")
    }

    /// Skips annotations: `@name` or `@name("value")`.
    mutating func annotations() throws(CedarError) {
        while eat("@") {
            _ = try identifier("an annotation name")
            if eat("(") {
                _ = try string("an annotation value")
                try expect(")")
            }
        }
    }

    mutating func parse() throws(CedarError) -> SchemaDeclarations {
        while peek.kind != .end {
            try annotations()
            if peek.isIdent("namespace") {
                _ = advance()
                let ns = try path("a namespace name")
                try expect("{")
                while !peek.isPunct("}") {
                    guard peek.kind != .end else { throw error("namespace \(ns) is not closed with '}'") }
                    try annotations()
                    try declaration(ns)
                }
                _ = advance()
            } else {
                try declaration("")
            }
        }
        return decls
    }

    mutating func declaration(_ ns: String) throws(CedarError) {
        let start = peek
        if peek.isIdent("entity") {
            _ = advance()
            try entity(ns, at: location(start))
        } else if peek.isIdent("action") {
            _ = advance()
            try action(ns, at: location(start))
        } else if peek.isIdent("type") {
            _ = advance()
            let nameToken = peek
            let name = try identifier("a type name")
            if SchemaDeclarations.primitives[name] != nil || Schema.extensionConstructors[name] != nil {
                throw error("\(name) is a built-in type and cannot be redeclared", nameToken)
            }
            try expect("=")
            let t = try type()
            try expect(";")
            let q = SchemaDeclarations.qualify(ns, name)
            guard decls.commonTypes[q] == nil else { throw error("common type \(q) is declared twice", nameToken) }
            decls.commonTypes[q] = (ns, t, location(nameToken))
        } else {
            throw error("expected 'entity', 'action', 'type' or 'namespace', found \(describe(peek))")
        }
    }

    /// A comma-separated list of entity type names, bracketed or a single one.
    mutating func typeNames() throws(CedarError) -> [(String, TextLocation?)] {
        var out: [(String, TextLocation?)] = []
        if eat("[") {
            while !peek.isPunct("]") {
                let t = peek
                out.append((try path("an entity type"), location(t)))
                if !eat(",") { break }
            }
            try expect("]")
        } else {
            let t = peek
            out.append((try path("an entity type"), location(t)))
        }
        return out
    }

    mutating func entity(_ ns: String, at: TextLocation) throws(CedarError) {
        var names = [try identifier("an entity type name")]
        while eat(",") { names.append(try identifier("an entity type name")) }
        var memberOf: [(String, TextLocation?)] = []
        if peek.isIdent("in") {
            _ = advance()
            memberOf = try typeNames()
        }
        var shape: SchemaTypeExpr?
        var enumIDs: [String]?
        if peek.isIdent("enum") {
            _ = advance()
            try expect("[")
            var ids: [String] = []
            repeat {
                if peek.isPunct("]") { break }
                ids.append(try string("an entity id"))
            } while eat(",")
            try expect("]")
            guard !ids.isEmpty else { throw error("an enumerated entity type needs at least one id") }
            enumIDs = ids
        } else {
            let hadEquals = eat("=")
            if peek.isPunct("{") {
                shape = try recordType()
            } else if hadEquals {
                throw error("expected a record type after '='")
            }
        }
        var tags: SchemaTypeExpr?
        if peek.isIdent("tags") {
            _ = advance()
            tags = try type()
        }
        try expect(";")
        for n in names {
            decls.entities.append(
                SchemaDeclarations.EntityDecl(
                    namespace: ns, name: n, memberOf: memberOf, shape: shape, tags: tags, enumIDs: enumIDs,
                    location: at))
        }
    }

    /// An action reference: `name` (this namespace's action) or `Path::"name"`.
    mutating func actionRef() throws(CedarError) -> (String?, String, TextLocation?) {
        let t = peek
        if peek.kind == .string { return (nil, try string("an action name"), location(t)) }
        var parts = [try identifier("an action name")]
        while peek.isPunct("::") {
            _ = advance()
            if peek.kind == .string {
                return (parts.joined(separator: "::"), try string("an action name"), location(t))
            }
            parts.append(try identifier("a name"))
        }
        guard parts.count == 1 else { throw error("an action reference is name or Type::\"name\"", t) }
        return (nil, parts[0], location(t))
    }

    mutating func action(_ ns: String, at: TextLocation) throws(CedarError) {
        var names = [try name("an action name")]
        while eat(",") { names.append(try name("an action name")) }
        var memberOf: [(String?, String, TextLocation?)] = []
        if peek.isIdent("in") {
            _ = advance()
            if eat("[") {
                while !peek.isPunct("]") {
                    memberOf.append(try actionRef())
                    if !eat(",") { break }
                }
                try expect("]")
            } else {
                memberOf.append(try actionRef())
            }
        }
        var appliesTo = false
        var principals: [(String, TextLocation?)] = []
        var resources: [(String, TextLocation?)] = []
        var context: SchemaTypeExpr?
        if peek.isIdent("appliesTo") {
            _ = advance()
            appliesTo = true
            try expect("{")
            var seen: Set<String> = []
            while !peek.isPunct("}") {
                let keyToken = peek
                let key = try identifier("principal, resource or context")
                guard seen.insert(key).inserted else { throw error("\(key) is given twice", keyToken) }
                try expect(":")
                switch key {
                case "principal": principals = try typeNames()
                case "resource": resources = try typeNames()
                case "context":
                    context = peek.isPunct("{") ? try recordType() : .name(try path("a type"), location(keyToken))
                default: throw error("expected principal, resource or context, found '\(key)'", keyToken)
                }
                if !eat(",") { break }
            }
            try expect("}")
        }
        try expect(";")
        for n in names {
            decls.actions.append(
                SchemaDeclarations.ActionDecl(
                    namespace: ns, name: n, memberOf: memberOf, appliesTo: appliesTo, principals: principals,
                    resources: resources, context: context, location: at))
        }
    }

    mutating func type() throws(CedarError) -> SchemaTypeExpr {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw error("types are nested more than \(Self.maxDepth) deep") }
        if peek.isPunct("{") { return try recordType() }
        let t = peek
        let p = try path("a type")
        if p == "Set" && peek.isPunct("<") {
            _ = advance()
            let element = try type()
            try expect(">")
            return .set(element)
        }
        return .name(p, location(t))
    }

    mutating func recordType() throws(CedarError) -> SchemaTypeExpr {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw error("types are nested more than \(Self.maxDepth) deep") }
        try expect("{")
        var attrs: [(String, SchemaTypeExpr, Bool)] = []
        var seen: Set<String> = []
        while !peek.isPunct("}") {
            try annotations()
            let t = peek
            let n = try name("an attribute name")
            guard seen.insert(n).inserted else { throw error("attribute \(n) is declared twice", t) }
            let optional = eat("?")
            try expect(":")
            attrs.append((n, try type(), !optional))
            if !eat(",") { break }
        }
        try expect("}")
        return .record(attrs)
    }
}
