/// Formats a policy file (`warden policy fmt`): each policy printed in the canonical form (``CedarPrinter``), one
/// blank line between policies, and every comment kept: comments between policies stay above the policy that follows
/// them, a comment on the line of a policy's closing `;` stays on that line, and a policy with a comment inside it is
/// kept exactly as written (moving the comment would detach it from what it explains). Idempotent: formatting the
/// output again gives the same text.
public enum CedarFormatter {
    /// The formatted text of `source`; a parse error if it does not parse.
    public static func format(_ source: String) throws(CedarError) -> String {
        let policies = try Parser.parsePolicies(source)
        let bytes = Array(source.utf8)
        let scan = Scan(bytes)
        var out = ""
        var cursor = 0
        func comments(in range: Range<Int>) -> [Range<Int>] {
            scan.comments.filter { range.contains($0.lowerBound) }
        }
        func text(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }
        // Line numbers by binary search over the newlines: linear in the file, whatever the number of comments.
        let newlines = bytes.indices.filter { bytes[$0] == 0x0A }
        func line(_ offset: Int) -> Int {
            var lo = 0
            var hi = newlines.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if newlines[mid] < offset { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        for (i, p) in policies.enumerated() {
            guard let start = p.location?.offset, let end = scan.terminator(after: start) else {
                return CedarPrinter.text(policies)  // cannot happen for parsed text; print without comments
            }
            // The gap before the policy: a comment on the previous policy's last line stays there.
            var leading: [Range<Int>] = []
            for c in comments(in: cursor..<start) {
                if i > 0, line(c.lowerBound) == line(cursor - 1) {
                    out += " " + text(c).trimmingTrailingWhitespace
                } else {
                    leading.append(c)
                }
            }
            if i > 0 { out += "\n\n" }
            // Groups of comments keep the blank line that separated them.
            for (k, c) in leading.enumerated() {
                if k > 0, bytes[leading[k - 1].upperBound..<c.lowerBound].filter({ $0 == 0x0A }).count >= 2 {
                    out += "\n"
                }
                out += text(c).trimmingTrailingWhitespace + "\n"
            }
            let segment = start..<(end + 1)
            out += comments(in: segment).isEmpty ? CedarPrinter.text(p) : text(segment)
            cursor = end + 1
        }
        var trailing: [String] = []
        for c in comments(in: cursor..<bytes.count) {
            if !policies.isEmpty, line(c.lowerBound) == line(cursor - 1) {
                out += " " + text(c).trimmingTrailingWhitespace
            } else {
                trailing.append(text(c).trimmingTrailingWhitespace)
            }
        }
        if !trailing.isEmpty { out += (policies.isEmpty ? "" : "\n\n") + trailing.joined(separator: "\n") }
        return out.isEmpty ? "" : out + "\n"
    }

    /// Where the comments and the string literals of a source are.
    struct Scan {
        var comments: [Range<Int>] = []
        var inCode: [Bool]
        let bytes: [UInt8]

        init(_ b: [UInt8]) {
            bytes = b
            inCode = [Bool](repeating: true, count: b.count)
            var i = 0
            while i < b.count {
                if b[i] == UInt8(ascii: "\"") {
                    let start = i
                    i += 1
                    while i < b.count && b[i] != UInt8(ascii: "\"") {
                        i += b[i] == UInt8(ascii: "\\") ? 2 : 1
                    }
                    i = min(i + 1, b.count)
                    for k in start..<i { inCode[k] = false }
                } else if b[i] == UInt8(ascii: "/"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "/") {
                    let start = i
                    while i < b.count && b[i] != 0x0A { i += 1 }
                    comments.append(start..<i)
                    for k in start..<i { inCode[k] = false }
                } else {
                    i += 1
                }
            }
        }

        /// The offset of the first `;` in code at or after `start`.
        func terminator(after start: Int) -> Int? {
            var i = start
            while i < bytes.count {
                if inCode[i] && bytes[i] == UInt8(ascii: ";") { return i }
                i += 1
            }
            return nil
        }
    }
}

extension String {
    fileprivate var trimmingTrailingWhitespace: String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
