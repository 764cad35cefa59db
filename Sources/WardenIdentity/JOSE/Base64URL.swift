/// Base64url without padding (RFC 4648 §5, as JOSE uses it). Decoding is strict: only the URL-safe alphabet, no
/// padding, no white space, and no non-zero bits left over in the last character.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let reverse: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Encodes bytes.
    @inlinable
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        if let s = bytes.withContiguousStorageIfAvailable({ encode(UnsafeRawBufferPointer($0)) }) { return s }
        return Array(bytes).withUnsafeBytes { encode($0) }
    }

    /// Encodes bytes in place into the string's storage (a proof's `ath` and every token and proof made: this ran
    /// through a temporary array per three bytes before).
    public static func encode(_ b: UnsafeRawBufferPointer) -> String {
        let count = (b.count * 4 + 2) / 3
        guard count > 0 else { return "" }
        return alphabet.withUnsafeBufferPointer { a in
            String(unsafeUninitializedCapacity: count) { out in
                var i = 0
                var o = 0
                while i + 3 <= b.count {
                    let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
                    out[o] = a[Int(n >> 18 & 63)]
                    out[o + 1] = a[Int(n >> 12 & 63)]
                    out[o + 2] = a[Int(n >> 6 & 63)]
                    out[o + 3] = a[Int(n & 63)]
                    i += 3
                    o += 4
                }
                if b.count - i == 1 {
                    let n = UInt32(b[i]) << 16
                    out[o] = a[Int(n >> 18 & 63)]
                    out[o + 1] = a[Int(n >> 12 & 63)]
                    o += 2
                } else if b.count - i == 2 {
                    let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
                    out[o] = a[Int(n >> 18 & 63)]
                    out[o + 1] = a[Int(n >> 12 & 63)]
                    out[o + 2] = a[Int(n >> 6 & 63)]
                    o += 3
                }
                return o
            }
        }
    }

    /// Decodes text; nil when it is not canonical unpadded base64url.
    @inlinable
    public static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        if let r = text.utf8.withContiguousStorageIfAvailable({ decode(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(text.utf8).withUnsafeBytes { decode($0) }
    }

    /// Decodes the ASCII bytes of base64url text; nil when it is not canonical unpadded base64url.
    public static func decode(_ s: UnsafeRawBufferPointer) -> [UInt8]? {
        guard s.count % 4 != 1 else { return nil }
        return reverse.withUnsafeBufferPointer { rev -> [UInt8]? in
            var out = [UInt8]()
            out.reserveCapacity(s.count * 3 / 4)
            var acc: UInt32 = 0
            var bits = 0
            for c in s {
                let v = rev[Int(c)]
                guard v != 0xFF else { return nil }
                acc = acc << 6 | UInt32(v)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                }
            }
            // Leftover bits must be zero, so that each byte string has exactly one encoding.
            guard acc & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
            return out
        }
    }
}
