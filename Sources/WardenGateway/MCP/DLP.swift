import Cedar
import Foundation

/// Finds secrets and personal data in text (the DLP step on MCP tool results): cloud and SaaS credentials, private
/// keys, JWTs, e-mail addresses and payment card numbers by their shapes; then, as detect-secrets and gitleaks do,
/// secrets without a fixed prefix: a high-entropy value after a secret-ish keyword (`generic_secret`), a base64 or
/// hex token that decodes to text holding a secret (`encoded_secret`), and a long, very random token that is no
/// digest, path, URL or blob (`high_entropy`). Hand-written byte scanners, linear in the input, that never trap
/// whatever the bytes.
public struct DLPScanner: Sendable {
    /// One match: its class (`aws_access_key`, `email`, …) and where it is, in UTF-8 byte offsets.
    public struct Finding: Sendable, Hashable {
        public let kind: String
        public let range: Range<Int>

        public init(kind: String, range: Range<Int>) {
            self.kind = kind
            self.range = range
        }
    }

    /// Redaction passes at most: redacting can expose a match that a neighbouring one hid (a key that was glued to
    /// a redacted secret), so the output is scanned again until clean.
    static let maxPasses = 8

    public init() {}

    /// The findings in `text`, sorted by start and never overlapping: overlapping matches are merged into one
    /// finding that covers them all, named after the most specific (a named shape before `encoded_secret`,
    /// `generic_secret` and `high_entropy`, in that order), then the longest. A generic candidate that overlaps a named
    /// shape is dropped: the named finding explains it.
    public func scan(_ text: String) -> [Finding] {
        Self.scan(bytes: Array(text.utf8))
    }

    /// `text` with every finding replaced by `[REDACTED:<kind>]`, and the kinds found.
    public func redact(_ text: String) -> (String, Set<String>) {
        var bytes = Array(text.utf8)
        var kinds = Set<String>()
        var changed = false
        for _ in 0..<Self.maxPasses {
            let found = Self.scan(bytes: bytes)
            if found.isEmpty { break }
            for f in found { kinds.insert(f.kind) }
            bytes = Self.splice(bytes, found)
            changed = true
        }
        return (changed ? String(decoding: bytes, as: UTF8.self) : text, kinds)
    }

    /// `value` with every string in it (object values and array items, and keys) redacted, and the kinds found. A
    /// string under a secret-ish key (`password`, `awsSecret`, …) that looks like a secret as a whole is a
    /// `generic_secret` too. Iterative, so any nesting depth is fine.
    public func redact(_ value: JSONValue) -> (JSONValue, Set<String>) {
        struct Frame {
            /// The object's keys; nil for an array.
            var keys: [String]?
            /// Which of the object's keys name a secret; empty for an array.
            var secretKeys: [Bool]
            var items: [JSONValue]
            var out: [JSONValue]
            var next: Int
        }
        var kinds = Set<String>()
        var stack: [Frame] = []
        var pending = value
        /// Whether `pending` is the value of a secret-ish key.
        var keyed = false
        while true {
            var done: JSONValue
            switch pending {
            case .string(let s):
                var (r, k) = redact(s)
                if k.isEmpty, keyed, Self.isKeyedSecret(s) {
                    r = "[REDACTED:generic_secret]"
                    k = ["generic_secret"]
                }
                kinds.formUnion(k)
                done = .string(r)
            case .number(let n):
                // A card number can travel as a JSON number: the redacted form is a string.
                let (r, k) = redact(n)
                kinds.formUnion(k)
                done = k.isEmpty ? pending : .string(r)
            case .array(let items) where !items.isEmpty:
                stack.append(Frame(keys: nil, secretKeys: [], items: items, out: [], next: 1))
                stack[stack.count - 1].out.reserveCapacity(items.count)
                pending = items[0]
                keyed = false
                continue
            case .object(let pairs) where !pairs.isEmpty:
                // Keys are text the model reads too.
                let keys = pairs.map { pair -> String in
                    let (r, k) = redact(pair.0)
                    kinds.formUnion(k)
                    return r
                }
                let secretKeys = pairs.map { Self.isSecretKey($0.0) }
                stack.append(Frame(keys: keys, secretKeys: secretKeys, items: pairs.map { $0.1 }, out: [], next: 1))
                stack[stack.count - 1].out.reserveCapacity(pairs.count)
                pending = pairs[0].1
                keyed = secretKeys[0]
                continue
            default:
                done = pending
            }
            // Hand `done` to its parent; close the containers that are complete.
            while true {
                guard !stack.isEmpty else { return (done, kinds) }
                let top = stack.count - 1
                stack[top].out.append(done)
                let next = stack[top].next
                if next < stack[top].items.count {
                    pending = stack[top].items[next]
                    keyed = stack[top].keys != nil && stack[top].secretKeys[next]
                    stack[top].next = next + 1
                    break
                }
                let frame = stack.removeLast()
                if let keys = frame.keys {
                    done = .object(Array(zip(keys, frame.out)))
                } else {
                    done = .array(frame.out)
                }
            }
        }
    }

    /// The kinds found in any string of `value` (object values, array items and keys), as `redact` finds them.
    public func findings(in value: JSONValue) -> Set<String> {
        var kinds = Set<String>()
        var stack = [(value, false)]
        while let top = stack.popLast() {
            let (v, keyed) = top
            switch v {
            case .string(let s):
                let found = scan(s)
                for f in found { kinds.insert(f.kind) }
                if found.isEmpty, keyed, Self.isKeyedSecret(s) { kinds.insert("generic_secret") }
            case .number(let s):
                for f in scan(s) { kinds.insert(f.kind) }
            case .array(let items):
                stack.append(contentsOf: items.map { ($0, false) })
            case .object(let pairs):
                for (k, x) in pairs {
                    for f in scan(k) { kinds.insert(f.kind) }
                    stack.append((x, Self.isSecretKey(k)))
                }
            default:
                break
            }
        }
        return kinds
    }

    // MARK: - Scanning

    static func splice(_ bytes: [UInt8], _ found: [Finding]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + found.count * 24)
        var at = 0
        for f in found where f.range.lowerBound >= at && f.range.upperBound <= bytes.count {
            out.append(contentsOf: bytes[at..<f.range.lowerBound])
            out.append(contentsOf: "[REDACTED:\(f.kind)]".utf8)
            at = f.range.upperBound
        }
        out.append(contentsOf: bytes[at...])
        return out
    }

    static func scan(bytes b: [UInt8]) -> [Finding] {
        var raw = ByteScanner(b)
        raw.scanAll()
        return merge(preferNamed(raw.found))
    }

    /// The kinds that only say a string looks secret (a keyword before it, what it decodes to, its entropy), by
    /// precedence; every other kind is a named shape and comes first.
    static let genericKinds = ["encoded_secret": 3, "generic_secret": 2, "high_entropy": 1]
    static let namedRank = 4

    static func rank(_ kind: String) -> Int { genericKinds[kind] ?? namedRank }

    /// The candidates without the generic ones that overlap a named shape.
    static func preferNamed(_ candidates: [Finding]) -> [Finding] {
        let named = candidates.filter { rank($0.kind) == namedRank }
        guard !named.isEmpty, named.count < candidates.count else { return candidates }
        // Disjoint and sorted, so each generic candidate costs a binary search.
        let spans = merge(named).map(\.range)
        return named
            + candidates.filter { f in
                guard rank(f.kind) != namedRank else { return false }
                var lo = 0
                var hi = spans.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if spans[mid].upperBound <= f.range.lowerBound { lo = mid + 1 } else { hi = mid }
                }
                return lo == spans.count || spans[lo].lowerBound >= f.range.upperBound
            }
    }

    /// Sorts and merges overlapping candidates: the union of their ranges, named after the most specific, then the
    /// longest (the earliest on a tie).
    static func merge(_ candidates: [Finding]) -> [Finding] {
        guard candidates.count > 1 else { return candidates }
        let sorted = candidates.sorted {
            $0.range.lowerBound != $1.range.lowerBound
                ? $0.range.lowerBound < $1.range.lowerBound : $0.range.count > $1.range.count
        }
        var out: [Finding] = []
        var best: [(Int, Int)] = []
        for f in sorted {
            let score = (rank(f.kind), f.range.count)
            if let last = out.last, f.range.lowerBound < last.range.upperBound {
                let k = out.count - 1
                let kind = score > best[k] ? f.kind : last.kind
                if score > best[k] { best[k] = score }
                out[k] = Finding(
                    kind: kind, range: last.range.lowerBound..<max(last.range.upperBound, f.range.upperBound))
            } else {
                out.append(f)
                best.append(score)
            }
        }
        return out
    }

    /// Whether an object key names a secret (`password`, `awsSecret`, `api_key`, `clientSecret`, …): its value is
    /// then checked as a whole.
    static func isSecretKey(_ key: String) -> Bool {
        let b = Array(key.utf8.prefix(256))
        for i in b.indices where ByteScanner.keyword(b, at: i) > 0 { return true }
        return false
    }

    /// Whether a whole string, the value of a secret-ish key, looks like a secret (``ByteScanner/genericValue``).
    static func isKeyedSecret(_ value: String) -> Bool {
        guard value.utf8.count <= ByteScanner.maxValue else { return false }
        let b = Array(value.utf8)
        return b.allSatisfy(ByteScanner.isValueChar) && ByteScanner.genericValue(b, 0..<b.count)
    }
}

/// One pass over the bytes; every detector does bounded work per position or skips past what it consumed, so the
/// whole scan is linear.
private struct ByteScanner {
    let b: [UInt8]
    let n: Int
    var found: [DLPScanner.Finding] = []
    /// Positions before which a detector does not start again (it consumed them).
    var cardNext = 0
    var slackNext = 0
    var jwtNext = 0
    var keyNext = 0
    var wordNext = 0
    var tokenNext = 0
    /// A private key without an end marker runs to the end of the text: nothing more to look for.
    var keysDone = false
    /// Scanning text decoded from a token: no tokens are decoded again, none is `high_entropy`.
    let nested: Bool

    init(_ b: [UInt8], nested: Bool = false) {
        self.b = b
        self.n = b.count
        self.nested = nested
    }

    static let awsPrefixes: [[UInt8]] = ["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"].map {
        Array($0.utf8)
    }
    static let aiza = Array("AIza".utf8)
    static let githubPat = Array("github_pat_".utf8)
    static let skLive = Array("sk_live_".utf8)
    static let rkLive = Array("rk_live_".utf8)
    static let xox = Array("xox".utf8)
    static let eyJ = Array("eyJ".utf8)
    static let begin = Array("-----BEGIN ".utf8)
    static let dashes = Array("-----".utf8)
    static let endPrefix = Array("-----END ".utf8)
    static let privateKey = Array("PRIVATE KEY".utf8)
    static let privateKeyBlock = Array("PRIVATE KEY BLOCK".utf8)

    // MARK: Character classes

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5A }
    static func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
    static func isAlpha(_ c: UInt8) -> Bool { isUpper(c) || isLower(c) }
    static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isAlpha(c) }
    /// `[A-Za-z0-9_-]`
    static func isBase64URL(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x5F || c == 0x2D }
    /// `[A-Za-z0-9/+]`
    static func isSecretChar(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x2F || c == 0x2B }
    /// The local part of an address: `[A-Za-z0-9._%+-]`
    static func isLocal(_ c: UInt8) -> Bool {
        isAlnum(c) || c == 0x2E || c == 0x5F || c == 0x25 || c == 0x2B || c == 0x2D
    }
    /// A domain label: `[A-Za-z0-9-]`
    static func isLabel(_ c: UInt8) -> Bool { isAlnum(c) || c == 0x2D }

    // MARK: Helpers

    func has(_ p: [UInt8], at i: Int) -> Bool {
        guard i >= 0, i + p.count <= n else { return false }
        for k in 0..<p.count where b[i + k] != p[k] { return false }
        return true
    }

    /// Whether the byte before `i` is absent or not alphanumeric.
    func leftBoundary(_ i: Int) -> Bool { i == 0 || !Self.isAlnum(b[i - 1]) }

    /// Length of the run of bytes in the class starting at `i`, counting at most `limit`.
    func run(from i: Int, limit: Int = Int.max, _ inClass: (UInt8) -> Bool) -> Int {
        var k = i
        while k < n, k - i < limit, inClass(b[k]) { k += 1 }
        return k - i
    }

    /// Whether `count` bytes from `i` are all in the class.
    func all(from i: Int, count: Int, _ inClass: (UInt8) -> Bool) -> Bool {
        guard i + count <= n else { return false }
        for k in i..<(i + count) where !inClass(b[k]) { return false }
        return true
    }

    mutating func add(_ kind: String, _ lower: Int, _ upper: Int) {
        guard lower >= 0, lower < upper, upper <= n else { return }
        found.append(DLPScanner.Finding(kind: kind, range: lower..<upper))
    }

    // MARK: The pass

    mutating func scanAll() {
        var i = 0
        while i < n {
            if i >= wordNext, Self.startsKeyword(b[i]) { keywordSecret(i) }
            if !nested, i >= tokenNext, Self.isBase64(b[i]) { token(i) }
            switch b[i] {
            case 0x41:  // A
                awsAccessKey(i)
                gcpKey(i)
            case 0x67:  // g
                githubToken(i)
            case 0x78:  // x
                slackToken(i)
            case 0x72:  // r
                stripeKey(i)
            case 0x73:  // s
                stripeKey(i)
                awsSecret(i)
            case 0x53:  // S
                awsSecret(i)
            case 0x65:  // e
                jwt(i)
            case 0x2D:  // -
                privateKey(i)
            case 0x40:  // @
                email(i)
            case 0x30...0x39:
                cardNumber(i)
            default:
                break
            }
            i += 1
        }
    }

    // MARK: Detectors

    /// `AKIA…` and the other AWS key-id prefixes, then exactly 16 of `[A-Z0-9]`, standing alone.
    mutating func awsAccessKey(_ i: Int) {
        guard i + 20 <= n, leftBoundary(i), Self.awsPrefixes.contains(where: { has($0, at: i) }),
            all(from: i + 4, count: 16, { Self.isUpper($0) || Self.isDigit($0) }),
            i + 20 == n || !Self.isAlnum(b[i + 20])
        else { return }
        add("aws_access_key", i, i + 20)
    }

    /// `AIza` and 35 of `[A-Za-z0-9_-]`.
    mutating func gcpKey(_ i: Int) {
        guard i + 39 <= n, leftBoundary(i), has(Self.aiza, at: i), all(from: i + 4, count: 35, Self.isBase64URL),
            i + 39 == n || !Self.isBase64URL(b[i + 39])
        else { return }
        add("gcp_api_key", i, i + 39)
    }

    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 alphanumerics; `github_pat_` and 82 of `[A-Za-z0-9_]`.
    mutating func githubToken(_ i: Int) {
        guard leftBoundary(i) else { return }
        if has(Self.githubPat, at: i) {
            let start = i + Self.githubPat.count
            let isWord: (UInt8) -> Bool = { Self.isAlnum($0) || $0 == 0x5F }
            guard all(from: start, count: 82, isWord), start + 82 == n || !isWord(b[start + 82]) else { return }
            add("github_token", i, start + 82)
            return
        }
        guard i + 40 <= n, b[i + 1] == 0x68, b[i + 3] == 0x5F else { return }
        switch b[i + 2] {
        case 0x70, 0x6F, 0x75, 0x73, 0x72: break  // p o u s r
        default: return
        }
        guard all(from: i + 4, count: 36, Self.isAlnum), i + 40 == n || !Self.isAlnum(b[i + 40]) else { return }
        add("github_token", i, i + 40)
    }

    /// `xox[baprs]-` and at least 10 of `[A-Za-z0-9-]` (the whole run).
    mutating func slackToken(_ i: Int) {
        guard i >= slackNext, i + 5 <= n, leftBoundary(i), has(Self.xox, at: i), b[i + 4] == 0x2D else { return }
        switch b[i + 3] {
        case 0x62, 0x61, 0x70, 0x72, 0x73: break  // b a p r s
        default: return
        }
        let length = run(from: i + 5, Self.isLabel)
        guard length >= 10 else { return }
        add("slack_token", i, i + 5 + length)
        slackNext = i + 5 + length
    }

    /// `sk_live_` or `rk_live_` and at least 24 alphanumerics (the whole run).
    mutating func stripeKey(_ i: Int) {
        guard leftBoundary(i), has(Self.skLive, at: i) || has(Self.rkLive, at: i) else { return }
        let start = i + Self.skLive.count
        let length = run(from: start, Self.isAlnum)
        guard length >= 24 else { return }
        add("stripe_key", i, start + length)
    }

    /// `secret_access_key` (any case; also `SecretAccessKey`, `secret-access-key`), up to 16 quotes, colons,
    /// equals signs, spaces or backslashes, then 40 of `[A-Za-z0-9/+]`: the 40 are the finding.
    mutating func awsSecret(_ i: Int) {
        guard let k = secretValue(after: i), all(from: k, count: 40, Self.isSecretChar) else { return }
        add("aws_secret_key", k, k + 40)
    }

    /// Where the value after a `secret_access_key` keyword at `i` starts.
    func secretValue(after i: Int) -> Int? {
        var k = i
        for (index, word) in Self.secretWords.enumerated() {
            if index > 0, k < n, b[k] == 0x5F || b[k] == 0x2D { k += 1 }
            for c in word {
                guard k < n else { return nil }
                let d = b[k]
                guard (Self.isUpper(d) ? d | 0x20 : d) == c else { return nil }
                k += 1
            }
        }
        var skipped = 0
        while k < n, skipped < 16, Self.isSeparator(b[k]) {
            k += 1
            skipped += 1
        }
        return k
    }

    static let secretWords: [[UInt8]] = [Array("secret".utf8), Array("access".utf8), Array("key".utf8)]

    /// `"` `'` `:` `=` space, tab, backslash
    static func isSeparator(_ c: UInt8) -> Bool {
        c == 0x22 || c == 0x27 || c == 0x3A || c == 0x3D || c == 0x20 || c == 0x09 || c == 0x5C
    }

    /// Three base64url segments of at least 10 characters separated by dots, the first starting `eyJ`.
    mutating func jwt(_ i: Int) {
        guard i >= jwtNext, has(Self.eyJ, at: i), i == 0 || !Self.isBase64URL(b[i - 1]) else { return }
        var k = i
        for segment in 0..<3 {
            let length = run(from: k, Self.isBase64URL)
            guard length >= 10 else { return }
            k += length
            if segment < 2 {
                guard k < n, b[k] == 0x2E else { return }
                k += 1
            }
        }
        add("jwt", i, k)
        jwtNext = k
    }

    /// `-----BEGIN <label>-----` where the label ends in `PRIVATE KEY` (or `PRIVATE KEY BLOCK`), through
    /// `-----END <label>-----`, or to the end of the text when there is no end marker.
    mutating func privateKey(_ i: Int) {
        guard !keysDone, i >= keyNext, has(Self.begin, at: i) else { return }
        let labelStart = i + Self.begin.count
        let labelLength = run(from: labelStart, limit: 48) { Self.isUpper($0) || Self.isDigit($0) || $0 == 0x20 }
        let labelEnd = labelStart + labelLength
        guard has(Self.dashes, at: labelEnd) else { return }
        let label = Array(b[labelStart..<labelEnd])
        guard label.count >= Self.privateKey.count else { return }
        func endsWith(_ suffix: [UInt8]) -> Bool {
            label.count >= suffix.count && Array(label[(label.count - suffix.count)...]) == suffix
        }
        guard endsWith(Self.privateKey) || endsWith(Self.privateKeyBlock) else { return }
        let marker = Self.endPrefix + label + Self.dashes
        var q = labelEnd + Self.dashes.count
        while q + marker.count <= n {
            if b[q] == 0x2D, has(marker, at: q) {
                add("private_key", i, q + marker.count)
                keyNext = q + marker.count
                return
            }
            q += 1
        }
        add("private_key", i, n)
        keysDone = true
    }

    /// `local@domain`: a local part of 1 to 64 of `[A-Za-z0-9._%+-]` (scanned back from the `@`), then labels of
    /// `[A-Za-z0-9-]` separated by dots, at least two, the last of two or more letters.
    mutating func email(_ at: Int) {
        var l = at
        while l > 0, at - l < 64, Self.isLocal(b[l - 1]) { l -= 1 }
        while l < at, b[l] == 0x2E { l += 1 }
        guard l < at else { return }
        var p = at + 1
        var labels = 0
        var end = -1
        while p < n, p - at <= 253 {
            let start = p
            var letters = true
            while p < n, p - at <= 253, Self.isLabel(b[p]) {
                if !Self.isAlpha(b[p]) { letters = false }
                p += 1
            }
            guard p > start else { break }
            labels += 1
            if labels >= 2, letters, p - start >= 2 { end = p }
            guard p < n, b[p] == 0x2E else { break }
            p += 1
        }
        guard end > at else { return }
        add("email", l, end)
    }

    /// 13 to 19 digits, single spaces or dashes allowed between them, not touching other letters or digits (nor a
    /// decimal point with digits), passing the Luhn check.
    mutating func cardNumber(_ i: Int) {
        guard i >= cardNext else { return }
        var digits: [UInt8] = []
        var p = i
        while true {
            while p < n, Self.isDigit(b[p]) {
                if digits.count <= 19 { digits.append(b[p] - 0x30) }
                p += 1
            }
            if p + 1 < n, b[p] == 0x20 || b[p] == 0x2D, Self.isDigit(b[p + 1]) {
                p += 1
                continue
            }
            break
        }
        cardNext = p
        guard digits.count >= 13, digits.count <= 19 else { return }
        guard leftBoundary(i), p == n || !Self.isAlnum(b[p]) else { return }
        func decimalMark(_ c: UInt8) -> Bool { c == 0x2E || c == 0x2C }
        if i >= 2, decimalMark(b[i - 1]), Self.isDigit(b[i - 2]) { return }
        if p + 1 < n, decimalMark(b[p]), Self.isDigit(b[p + 1]) { return }
        var sum = 0
        for (k, d) in digits.reversed().enumerated() {
            var v = Int(d)
            if k % 2 == 1 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        guard sum % 10 == 0 else { return }
        add("card_number", i, p)
    }

    // MARK: Secrets without a fixed prefix

    /// The longest value a keyword-anchored secret may have (a longer run is a blob, not a secret).
    static let maxValue = 256
    /// The longest token decoded and rescanned (an image or a file is longer; its decoding is not text anyway).
    static let maxEncoded = 4096
    /// The token lengths that can be `high_entropy`.
    static let entropyLengths = 32...128
    /// Bits per character a `high_entropy` token needs (random base64 of 32 characters has about 4.6, of 40 about
    /// 4.8; English words, identifiers and hex digests stay below 4.2).
    static let highEntropy = 4.5

    /// Secret-ish words, lowercase; matched in any case, inside identifiers too (`awsSecretAccessKey`,
    /// `client_secret`, `X-Api-Key`, `GITHUB_TOKEN`).
    static let keywords: [[UInt8]] = [
        "secret", "password", "passwd", "passphrase", "pwd", "token", "apikey", "api_key", "api-key", "accesskey",
        "access_key", "access-key", "privatekey", "private_key", "private-key", "auth", "credential",
    ].map { Array($0.utf8) }

    /// Words between an assignment and its value: `the secret is …`, `Authorization: Bearer …`.
    static let linkWords: [[UInt8]] = ["is", "was", "are", "bearer", "basic", "token"].map { Array($0.utf8) }

    static func lower(_ c: UInt8) -> UInt8 { isUpper(c) ? c | 0x20 : c }

    /// Whether a keyword can start with `c`.
    static func startsKeyword(_ c: UInt8) -> Bool {
        switch lower(c) {
        case 0x73, 0x70, 0x74, 0x61, 0x63: true  // s p t a c
        default: false
        }
    }

    /// The length of the keyword at `i` in `b`, or 0.
    static func keyword(_ b: [UInt8], at i: Int) -> Int {
        let first = lower(b[i])
        for w in keywords where w[0] == first && i + w.count <= b.count {
            var k = 1
            while k < w.count, lower(b[i + k]) == w[k] { k += 1 }
            if k == w.count { return w.count }
        }
        return 0
    }

    /// `[A-Za-z0-9+/_-]`: the standard and the URL-safe base64 alphabets.
    static func isBase64(_ c: UInt8) -> Bool { isBase64URL(c) || c == 0x2B || c == 0x2F }
    /// `[0-9A-Fa-f]`
    static func isHex(_ c: UInt8) -> Bool { isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) }
    /// The rest of an identifier after a keyword: `[A-Za-z0-9_.-]`
    static func isIdentifier(_ c: UInt8) -> Bool { isBase64URL(c) || c == 0x2E }
    /// Between a keyword and its value: the separators, `>` and a backquote (`=>`, `` `…` ``).
    static func isAssignment(_ c: UInt8) -> Bool { isSeparator(c) || c == 0x3E || c == 0x60 }
    /// A value: letters, digits and `+/=_-.~!@#$%^*|` (not quotes, brackets, `,;:&?` or spaces, which end it).
    static func isValueChar(_ c: UInt8) -> Bool {
        if isAlnum(c) { return true }
        switch c {
        case 0x2B, 0x2F, 0x3D, 0x5F, 0x2D, 0x2E, 0x7E, 0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x2A, 0x7C: return true
        default: return false
        }
    }

    /// Shannon entropy of the bytes in `r`, in bits per character.
    static func entropy(_ b: [UInt8], _ r: Range<Int>) -> Double {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { counts in
            counts.initialize(repeating: 0)
            for k in r { counts[Int(b[k])] += 1 }
            let total = Double(r.count)
            var h = 0.0
            for c in counts where c > 0 {
                let p = Double(c) / total
                h -= p * log2(p)
            }
            return h
        }
    }

    /// Whether `r` (value characters only) looks like a secret: 16 to ``maxValue`` characters, not a `$` reference,
    /// a path or a one-case slug (`app-tls-cert-2024`, `PROD_DB_NAME_2`), with letters and digits; hex needs 32 or
    /// more characters and 3.0 bits per character, anything else min(4.0, 0.85·log2(length)) bits (3.4 at 16
    /// characters, 3.67 at 20, 4.0 from 26: the most a short string can have is log2 of its length, so a fixed 4.0
    /// would miss half the random 20-character secrets).
    static func genericValue(_ b: [UInt8], _ r: Range<Int>) -> Bool {
        guard r.count >= 16, r.count <= maxValue, b[r.lowerBound] != 0x24 else { return false }
        var upper = 0
        var lower = 0
        var digits = 0
        var separators = 0
        var others = 0
        var hex = true
        for k in r {
            let c = b[k]
            if isDigit(c) {
                digits += 1
            } else if isAlpha(c) {
                if isUpper(c) { upper += 1 } else { lower += 1 }
                if !isHex(c) { hex = false }
            } else {
                hex = false
                if c == 0x2D || c == 0x5F || c == 0x2E { separators += 1 } else { others += 1 }
            }
        }
        guard upper + lower > 0, digits > 0 else { return false }
        if hex { return r.count >= 32 && entropy(b, r) >= 3.0 }
        let slug = (upper == 0 || lower == 0) && others == 0 && separators >= 2
        guard !slug, !pathLike(b, r) else { return false }
        return entropy(b, r) >= min(4.0, 0.85 * log2(Double(r.count)))
    }

    /// Whether `r` reads as a path: it has a `/` and two segments that are words (`usr`, `site-packages`,
    /// `Documents`, `v1.2`), or it starts `/`, `~` or `.` and has one.
    static func pathLike(_ b: [UInt8], _ r: Range<Int>) -> Bool {
        var slashes = 0
        var words = 0
        var segment = r.lowerBound
        for k in r.lowerBound...r.upperBound where k == r.upperBound || b[k] == 0x2F {
            if k < r.upperBound { slashes += 1 }
            // A word: 3 or more of `[a-z0-9._-]` with a lowercase letter, the first letter maybe uppercase.
            var lowercase = false
            var ok = k - segment >= 3
            for j in segment..<k where ok {
                let c = b[j]
                if isLower(c) {
                    lowercase = true
                } else if !(isDigit(c) || c == 0x2E || c == 0x5F || c == 0x2D || (j == segment && isUpper(c))) {
                    ok = false
                }
            }
            if ok, lowercase { words += 1 }
            segment = k + 1
        }
        guard slashes > 0 else { return false }
        let first = b[r.lowerBound]
        return words >= 2 || (words >= 1 && (first == 0x2F || first == 0x7E || first == 0x2E))
    }

    /// A secret-ish keyword, the rest of its identifier, an assignment (`=`, `:`, `": "`, spaces; then maybe `is` or
    /// `Bearer`), and a value that passes ``genericValue``: the value is the finding. Bounded: the identifier, the
    /// assignment and the value are capped, and no keyword is looked for again before where this one's value ends.
    mutating func keywordSecret(_ i: Int) {
        let w = Self.keyword(b, at: i)
        guard w > 0 else { return }
        var k = i + w
        k += run(from: k, limit: 32, Self.isIdentifier)
        wordNext = k
        let assignment = run(from: k, limit: 12, Self.isAssignment)
        guard assignment > 0 else { return }
        k = afterLinkWord(k + assignment)
        let length = run(from: k, limit: Self.maxValue + 1, Self.isValueChar)
        wordNext = k + length
        guard length <= Self.maxValue else { return }
        var end = k + length
        // A full stop ends the sentence, not the value.
        while end > k, b[end - 1] == 0x2E { end -= 1 }
        guard Self.genericValue(b, k..<end) else { return }
        add("generic_secret", k, end)
    }

    /// Past a link word and the spaces after it, or `k`.
    func afterLinkWord(_ k: Int) -> Int {
        let letters = run(from: k, limit: 7, Self.isAlpha)
        guard letters >= 2, letters <= 6, k + letters < n, b[k + letters] == 0x20 else { return k }
        let word = b[k..<(k + letters)].map(Self.lower)
        guard Self.linkWords.contains(where: { $0 == word }) else { return k }
        return k + letters + run(from: k + letters, limit: 4) { $0 == 0x20 }
    }

    /// A run of the base64 alphabets (and up to two `=`) at `i`, up to ``maxEncoded`` long: when it decodes (as hex
    /// or base64) to text in which a secret is found, it is an `encoded_secret`; else, when it passes
    /// ``highEntropyToken``, `high_entropy`. Each run is looked at once, so the work is linear.
    mutating func token(_ i: Int) {
        let runEnd = i + run(from: i, Self.isBase64)
        var end = runEnd
        while end < n, end - runEnd < 2, b[end] == 0x3D { end += 1 }
        tokenNext = end
        var start = i
        // An escaped `\n`, `\r` or `\t` before the token is not part of it.
        if start > 0, b[start - 1] == 0x5C, b[start] == 0x6E || b[start] == 0x72 || b[start] == 0x74 { start += 1 }
        let length = runEnd - start
        guard length >= 16, length <= Self.maxEncoded else { return }
        var decodesToText = false
        for decoded in decodings(start..<runEnd) where Self.isText(decoded) {
            decodesToText = true
            var inner = ByteScanner(decoded, nested: true)
            inner.scanAll()
            if inner.found.contains(where: { $0.kind != "email" && $0.kind != "card_number" }) {
                add("encoded_secret", start, end)
                return
            }
        }
        // Encoded text is not key material.
        guard !decodesToText, Self.entropyLengths.contains(length), highEntropyToken(start..<runEnd) else { return }
        add("high_entropy", start, end)
    }

    /// The token's hex decoding (even length, 32 or more digits, maybe after `0x`) and its base64 decoding.
    func decodings(_ r: Range<Int>) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var h = r.lowerBound
        if r.count > 2, b[h] == 0x30, b[h + 1] | 0x20 == 0x78 { h += 2 }
        if (r.upperBound - h) % 2 == 0, r.upperBound - h >= 32, all(from: h, count: r.upperBound - h, Self.isHex) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity((r.upperBound - h) / 2)
            var k = h
            while k < r.upperBound {
                bytes.append(Self.nibble(b[k]) << 4 | Self.nibble(b[k + 1]))
                k += 2
            }
            out.append(bytes)
        }
        if r.count % 4 != 1 {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(r.count * 3 / 4)
            var acc: UInt32 = 0
            var bits = 0
            for k in r {
                acc = (acc << 6 | UInt32(Self.sextet(b[k]))) & 0xFFFF
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    bytes.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                }
            }
            out.append(bytes)
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8 { isDigit(c) ? c - 0x30 : (c | 0x20) - 0x61 + 10 }

    /// A base64 character's value, standard or URL-safe.
    static func sextet(_ c: UInt8) -> UInt8 {
        if isUpper(c) { return c - 0x41 }
        if isLower(c) { return c - 0x61 + 26 }
        if isDigit(c) { return c - 0x30 + 52 }
        return c == 0x2B || c == 0x2D ? 62 : 63
    }

    /// Valid UTF-8 without control characters other than tab, line feed and carriage return.
    static func isText(_ t: [UInt8]) -> Bool {
        guard !t.isEmpty, !t.contains(where: { ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D) || $0 == 0x7F })
        else { return false }
        return t.allSatisfy({ $0 < 0x80 }) || String(decoding: t, as: UTF8.self).utf8.elementsEqual(t)
    }

    static let digestWords: [[UInt8]] = ["sha", "md5", "digest", "hash", "integrity", "checksum"].map {
        Array($0.utf8)
    }

    /// Whether the token in `r` is random enough to be key material on its own: two or more each of upper- and
    /// lowercase letters and digits, not hex (a digest, a UUID), at most two `/` and not a path, and at least
    /// ``highEntropy`` bits per character; not after a digest's name (`sha256-`, `Digest: `), not in a URL, a data:
    /// URI, an e-mail address or a file name, and not a line of a wrapped base64 blob.
    func highEntropyToken(_ r: Range<Int>) -> Bool {
        var upper = 0
        var lower = 0
        var digits = 0
        var slashes = 0
        var hex = true
        for k in r {
            let c = b[k]
            if Self.isUpper(c) {
                upper += 1
            } else if Self.isLower(c) {
                lower += 1
            } else if Self.isDigit(c) {
                digits += 1
            }
            if c == 0x2F { slashes += 1 }
            if !Self.isHex(c) && c != 0x2D { hex = false }
        }
        let s = r.lowerBound
        let e = r.upperBound
        guard upper >= 2, lower >= 2, digits >= 2, !hex, slashes <= 2, b[s] != 0x2F else { return false }
        // Part of a host name, a file name, an address, a URL-encoded or `$`-expanded string.
        if s > 0, [0x2E, 0x25, 0x23, 0x40, 0x7E, 0x24].contains(b[s - 1]) { return false }
        if e + 1 < n, b[e] == 0x2E || b[e] == 0x40 || b[e] == 0x25, Self.isAlnum(b[e + 1]) { return false }
        guard !Self.pathLike(b, r), !afterDigestWord(s), !inURL(s), !blobLine(s, e) else { return false }
        return Self.entropy(b, r) >= Self.highEntropy
    }

    /// Whether a digest's name (`sha256-`, `sha-1=`, `md5:`, `Digest: `, `integrity="`) is in the 24 bytes before
    /// `s`, or the token starts with one.
    func afterDigestWord(_ s: Int) -> Bool {
        for k in max(0, s - 24)..<min(n, s + 3) {
            for w in Self.digestWords where k + w.count <= n && Self.lower(b[k]) == w[0] {
                var j = 1
                while j < w.count, Self.lower(b[k + j]) == w[j] { j += 1 }
                if j == w.count { return true }
            }
        }
        return false
    }

    /// Whether `s` is inside a URL or a data: URI: a `://` or `base64,` before it with no space, quote or bracket
    /// between (looked for in the 256 bytes before it).
    func inURL(_ s: Int) -> Bool {
        var k = s - 1
        while k >= 0, s - k <= 256 {
            switch b[k] {
            case 0x20, 0x09, 0x0A, 0x0D, 0x22, 0x27, 0x60, 0x3C, 0x3E, 0x28, 0x29, 0x5B, 0x5D, 0x7B, 0x7D:
                return false
            case 0x3A where k + 2 < n && b[k + 1] == 0x2F && b[k + 2] == 0x2F:
                return true
            case 0x2C where k >= 6 && Self.lower(b[k - 6]) == 0x62 && has(Self.base64Word, at: k - 5):
                return true
            default:
                k -= 1
            }
        }
        return false
    }

    static let base64Word = Array("ase64".utf8)

    /// Whether a line break (or an escaped `\n`) joins the token in `s..<e` to another run of 16 or more base64
    /// characters: a line of a wrapped blob (a certificate, an attachment), not a key.
    func blobLine(_ s: Int, _ e: Int) -> Bool {
        var k = e
        while k < n, k - e < 2, b[k] == 0x3D { k += 1 }
        if k < n, b[k] == 0x0D { k += 1 }
        if k < n, b[k] == 0x0A {
            k += 1
        } else if has(Self.escapedCRLF, at: k) {
            k += 4
        } else if has(Self.escapedLF, at: k) {
            k += 2
        } else {
            k = -1
        }
        if k >= 0, run(from: k, limit: 16, Self.isBase64) >= 16 { return true }
        var j = s
        if j >= 1, b[j - 1] == 0x0A {
            j -= 1
            if j >= 1, b[j - 1] == 0x0D { j -= 1 }
        } else if j >= 2, b[j - 2] == 0x5C, b[j - 1] == 0x6E {
            j -= 2
            if has(Self.escapedCR, at: j - 2) { j -= 2 }
        } else {
            return false
        }
        while j > 0, s - j < 24, b[j - 1] == 0x3D { j -= 1 }
        var count = 0
        while j > 0, count < 16, Self.isBase64(b[j - 1]) {
            j -= 1
            count += 1
        }
        return count >= 16
    }

    static let escapedLF = Array("\\n".utf8)
    static let escapedCR = Array("\\r".utf8)
    static let escapedCRLF = Array("\\r\\n".utf8)
}
