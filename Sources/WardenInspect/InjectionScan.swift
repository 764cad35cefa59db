import Cedar

/// Looks for prompt-injection patterns in tool definitions (tool poisoning): text that tries to override the
/// model's instructions, hide directives from the user, hijack other tools, reach for secrets or send data away.
/// Matching is case-insensitive, after folding whitespace runs to one space and dropping invisible characters (which
/// are a flag of their own). A flagged tool is never pinned on first use.
public enum InjectionScan {
    struct Phrase: Sendable {
        let bytes: [UInt8]
        /// The match must not be followed by a letter or digit (`upload to` is not `upload tokens`).
        let wordEnd: Bool

        init(_ text: String, wordEnd: Bool = false) {
            self.bytes = Array(text.utf8)
            self.wordEnd = wordEnd
        }
    }

    struct Rule: Sendable {
        let flag: String
        let phrases: [Phrase]
    }

    static let rules: [Rule] = [
        Rule(
            flag: "instruction_override",
            phrases: [
                Phrase("ignore previous instructions"), Phrase("ignore all previous"), Phrase("ignore the above"),
                Phrase("disregard previous"), Phrase("forget your instructions"), Phrase("new instructions:"),
            ]),
        Rule(
            flag: "hidden_directive",
            phrases: [
                Phrase("<important>"), Phrase("<system>"), Phrase("[system]"), Phrase("<instructions>"),
                Phrase("do not tell the user"), Phrase("don't tell the user"), Phrase("do not mention"),
                Phrase("without telling"), Phrase("the user must not"), Phrase("secretly"),
            ]),
        Rule(
            flag: "tool_hijack",
            phrases: [
                Phrase("before using this tool"), Phrase("before answering"), Phrase("before calling any"),
                Phrase("instead of calling"), Phrase("always call this tool"), Phrase("you must call"),
            ]),
        Rule(
            flag: "sensitive_path",
            phrases: [
                Phrase("~/.ssh"), Phrase("id_rsa"), Phrase(".aws/credentials"), Phrase("/etc/passwd"),
                Phrase(".env", wordEnd: true), Phrase("private key"), Phrase("mcp.json"),
            ]),
        Rule(
            flag: "exfiltration",
            phrases: [
                Phrase("send it to", wordEnd: true), Phrase("send them to", wordEnd: true),
                Phrase("upload to", wordEnd: true), Phrase("post the contents"), Phrase("include the contents"),
                Phrase("http://"), Phrase("https://"), Phrase("curl "), Phrase("wget "),
            ]),
        Rule(flag: "prompt_leak", phrases: [Phrase("system prompt"), Phrase("your instructions")]),
    ]

    /// Zero-width characters, bidirectional controls and Unicode tag characters: text a human reviewer does not
    /// see but a model reads.
    static func isInvisible(_ v: UInt32) -> Bool {
        switch v {
        case 0x200B...0x200F, 0x2060...0x2064, 0xFEFF, 0x202A...0x202E, 0x2066...0x2069, 0xE0000...0xE007F: true
        default: false
        }
    }

    /// The flags raised by `text` (a tool's name, title or description), sorted, each once.
    public static func flags(_ text: String) -> [String] {
        var folded = String.UnicodeScalarView()
        var invisible = false
        var lastSpace = false
        for u in text.unicodeScalars {
            if isInvisible(u.value) {
                invisible = true
                continue
            }
            if u.properties.isWhitespace {
                if !lastSpace { folded.append(" ") }
                lastSpace = true
                continue
            }
            lastSpace = false
            // Typographic apostrophes read as the ASCII one (`don’t tell the user`).
            folded.append(u.value == 0x2018 || u.value == 0x2019 ? "'" : u)
        }
        let haystack = Array(String(folded).lowercased().utf8)
        var out: [String] = []
        for rule in rules where rule.phrases.contains(where: { Self.contains(haystack, $0) }) {
            out.append(rule.flag)
        }
        if invisible { out.append("invisible_characters") }
        return out.sorted()
    }

    /// The flags raised by a tool definition: its `name`, `title` and `description`, and every `description` and
    /// `title` string anywhere in its `inputSchema`.
    public static func flags(tool: JSONValue) -> [String] {
        var texts: [String] = []
        for key in ["name", "title", "description"] {
            if case .string(let s)? = tool[key] { texts.append(s) }
        }
        if let schema = tool["inputSchema"] {
            var stack = [schema]
            while let v = stack.popLast() {
                switch v {
                case .object(let pairs):
                    for (k, x) in pairs {
                        if case .string(let s) = x {
                            if k == "description" || k == "title" { texts.append(s) }
                        } else {
                            stack.append(x)
                        }
                    }
                case .array(let items):
                    stack.append(contentsOf: items)
                default:
                    break
                }
            }
        }
        var all = Set<String>()
        for t in texts { all.formUnion(flags(t)) }
        return all.sorted()
    }

    static func contains(_ haystack: [UInt8], _ phrase: Phrase) -> Bool {
        let p = phrase.bytes
        let m = p.count
        guard m > 0, haystack.count >= m else { return false }
        let first = p[0]
        var i = 0
        while i <= haystack.count - m {
            if haystack[i] == first {
                var j = 1
                while j < m, haystack[i + j] == p[j] { j += 1 }
                if j == m {
                    let after = i + m
                    if !phrase.wordEnd || after == haystack.count || !isWordByte(haystack[after]) { return true }
                }
            }
            i += 1
        }
        return false
    }

    static func isWordByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}
