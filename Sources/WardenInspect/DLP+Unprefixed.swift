import Cedar
import Foundation

/// Secrets without a fixed prefix (`generic_secret`, `high_entropy`, `encoded_secret`): keyword-anchored values,
/// high-entropy tokens of secret shape, and base64 or hex tokens that decode to text holding a known secret. Part of
/// the one linear pass of `ByteScanner` (`DLP.swift`).
extension ByteScanner {

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
