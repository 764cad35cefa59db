/// A token of Cedar policy text.
struct Token: Sendable {
    enum Kind: Sendable, Equatable {
        case identifier
        case integer
        case string
        case slot
        case punct
        case end
    }
    let kind: Kind
    /// The token's source text (for strings, including the quotes).
    let text: Substring
    let position: Position

    /// A cheap position; ``Lexer/location(of:in:)`` turns it into line and column when needed.
    struct Position: Sendable {
        let line: Int
        let lineStart: String.Index
        let index: String.Index
    }

    func isPunct(_ p: String) -> Bool { kind == .punct && text == p }
    func isIdent(_ word: String) -> Bool { kind == .identifier && text == word }
}

/// Splits Cedar policy text into tokens, skipping whitespace and `//` comments.
struct Lexer {
    static let maxTokens = 4_000_000

    /// `schema`: the schema language's tokens (a lone `=` and `?`) instead of the policy language's.
    static func tokenize(_ source: String, schema: Bool = false) throws(CedarError) -> [Token] {
        let utf8 = source.utf8
        var tokens: [Token] = []
        var i = utf8.startIndex
        var line = 1
        var lineStart = utf8.startIndex

        func position(_ at: String.Index) -> Token.Position {
            Token.Position(line: line, lineStart: lineStart, index: at)
        }
        func location(_ at: String.Index) -> TextLocation {
            Lexer.location(of: position(at), in: source)
        }

        while i < utf8.endIndex {
            let c = utf8[i]
            if c == UInt8(ascii: "\n") {
                i = utf8.index(after: i)
                line += 1
                lineStart = i
                continue
            }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || c == 0x0B || c == 0x0C {
                i = utf8.index(after: i)
                continue
            }
            if c >= 0x80, source.unicodeScalars[i].properties.isWhitespace {
                // Other Unicode white space (no-break space, line separator, ...), as the reference grammar's \s.
                i = source.unicodeScalars.index(after: i)
                continue
            }
            let start = i
            if c == UInt8(ascii: "/") {
                let n = utf8.index(after: i)
                if n < utf8.endIndex && utf8[n] == UInt8(ascii: "/") {
                    while i < utf8.endIndex && utf8[i] != UInt8(ascii: "\n") { i = utf8.index(after: i) }
                    continue
                }
                throw CedarError(.parse, "unexpected character '/'", at: location(start))
            }
            guard tokens.count < maxTokens else {
                throw CedarError(
                    .parse, "policy text is too large (more than \(maxTokens) tokens)", at: location(start))
            }
            if Name.isIdentifierStart(c) {
                while i < utf8.endIndex && Name.isIdentifierContinue(utf8[i]) { i = utf8.index(after: i) }
                tokens.append(Token(kind: .identifier, text: source[start..<i], position: position(start)))
                continue
            }
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                while i < utf8.endIndex && utf8[i] >= UInt8(ascii: "0") && utf8[i] <= UInt8(ascii: "9") {
                    i = utf8.index(after: i)
                }
                tokens.append(Token(kind: .integer, text: source[start..<i], position: position(start)))
                continue
            }
            if c == UInt8(ascii: "\"") {
                let loc = position(start)
                i = utf8.index(after: i)
                var closed = false
                while i < utf8.endIndex {
                    let d = utf8[i]
                    if d == UInt8(ascii: "\\") {
                        i = utf8.index(after: i)
                        if i < utf8.endIndex { i = utf8.index(after: i) }
                        continue
                    }
                    if d == UInt8(ascii: "\n") {
                        line += 1
                        lineStart = utf8.index(after: i)
                    }
                    i = utf8.index(after: i)
                    if d == UInt8(ascii: "\"") {
                        closed = true
                        break
                    }
                }
                guard closed else {
                    throw CedarError(.parse, "unterminated string literal", at: Lexer.location(of: loc, in: source))
                }
                tokens.append(Token(kind: .string, text: source[start..<i], position: loc))
                continue
            }
            if c == UInt8(ascii: "?") && !schema {
                i = utf8.index(after: i)
                while i < utf8.endIndex && Name.isIdentifierContinue(utf8[i]) { i = utf8.index(after: i) }
                let text = source[start..<i]
                guard text == "?principal" || text == "?resource" else {
                    throw CedarError(
                        .parse, "invalid template slot '\(text)': only ?principal and ?resource exist",
                        at: location(start))
                }
                tokens.append(Token(kind: .slot, text: text, position: position(start)))
                continue
            }
            let next: UInt8? = utf8.index(after: i) < utf8.endIndex ? utf8[utf8.index(after: i)] : nil
            var length = 1
            switch c {
            case UInt8(ascii: "=") where schema:
                break
            case UInt8(ascii: "?") where schema:
                break
            case UInt8(ascii: "="):
                guard next == UInt8(ascii: "=") else {
                    throw CedarError(.parse, "unexpected '=': use '==' to compare", at: location(start))
                }
                length = 2
            case UInt8(ascii: "!"), UInt8(ascii: "<"), UInt8(ascii: ">"):
                if next == UInt8(ascii: "=") { length = 2 }
            case UInt8(ascii: "&"):
                guard next == UInt8(ascii: "&") else {
                    throw CedarError(.parse, "unexpected '&': use '&&'", at: location(start))
                }
                length = 2
            case UInt8(ascii: "|"):
                guard next == UInt8(ascii: "|") else {
                    throw CedarError(.parse, "unexpected '|': use '||'", at: location(start))
                }
                length = 2
            case UInt8(ascii: ":"):
                if next == UInt8(ascii: ":") { length = 2 }
            case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"),
                UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "."), UInt8(ascii: "+"),
                UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "/"):
                break
            default:
                let scalar = source.unicodeScalars[start]
                throw CedarError(.parse, "unexpected character '\(scalar.escaped(asASCII: true))'", at: location(start))
            }
            i = utf8.index(i, offsetBy: length)
            tokens.append(Token(kind: .punct, text: source[start..<i], position: position(start)))
        }
        tokens.append(Token(kind: .end, text: source[i..<i], position: position(i)))
        return tokens
    }

    /// The line and column of a token position.
    static func location(of p: Token.Position, in source: String) -> TextLocation {
        let column = source.unicodeScalars[p.lineStart..<p.index].count + 1
        return TextLocation(
            line: p.line, column: column, offset: source.utf8.distance(from: source.utf8.startIndex, to: p.index))
    }
}
