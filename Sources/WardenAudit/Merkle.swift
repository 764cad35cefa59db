import Crypto
import Foundation
import WardenCore
import WardenIdentity

/// A SHA-256 value held inline (no allocation), written as lowercase hex.
public struct Hash32: Hashable, Sendable, CustomStringConvertible {
    var a: UInt64, b: UInt64, c: UInt64, d: UInt64

    public static let zero = Hash32(a: 0, b: 0, c: 0, d: 0)

    init(a: UInt64, b: UInt64, c: UInt64, d: UInt64) {
        self.a = a
        self.b = b
        self.c = c
        self.d = d
    }

    init(_ digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { Hash32(pointer: $0.baseAddress!) }
    }

    /// From the 32 bytes at `p`.
    public init(pointer p: UnsafeRawPointer) {
        self.init(
            a: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
            b: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            c: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
            d: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// From exactly 32 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        self = Array(bytes).withUnsafeBytes { Hash32(pointer: $0.baseAddress!) }
    }

    /// From 64 hex digits.
    public init?(hex: String) {
        let u = Array(hex.utf8)
        guard u.count == 64 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            guard let hi = Self.nibble(u[2 * i]), let lo = Self.nibble(u[2 * i + 1]) else { return nil }
            out[i] = hi << 4 | lo
        }
        self.init(bytes: out)
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        default: nil
        }
    }

    public func withUnsafeBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        var copy = self
        return try Swift.withUnsafeBytes(of: &copy) { try body($0) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
    public var data: Data { withUnsafeBytes { Data($0) } }
    public var hex: String { Attestation.hex(bytes) }
    public var description: String { hex }
}

/// RFC 6962 / RFC 9162 Merkle tree hashing, the audit log's hash chain, and inclusion and consistency proofs.
public enum Merkle {
    /// The hash of the empty tree: SHA-256 of nothing.
    public static let emptyRoot = Hash32(SHA256.hash(data: [UInt8]()))

    /// `SHA-256(0x00 || entry)`.
    public static func leafHash(_ entry: UnsafeRawBufferPointer) -> Hash32 {
        var h = SHA256()
        withUnsafeBytes(of: UInt8(0)) { h.update(bufferPointer: $0) }
        h.update(bufferPointer: entry)
        return Hash32(h.finalize())
    }

    public static func leafHash(_ entry: some StringProtocol) -> Hash32 {
        var s = String(entry)
        return s.withUTF8 { leafHash(UnsafeRawBufferPointer($0)) }
    }

    /// `SHA-256(0x01 || left || right)`.
    public static func nodeHash(_ left: Hash32, _ right: Hash32) -> Hash32 {
        var h = SHA256()
        withUnsafeBytes(of: UInt8(1)) { h.update(bufferPointer: $0) }
        left.withUnsafeBytes { h.update(bufferPointer: $0) }
        right.withUnsafeBytes { h.update(bufferPointer: $0) }
        return Hash32(h.finalize())
    }

    /// The hash chain: `SHA-256(previous || leafHash)`.
    public static func chainHash(_ previous: Hash32, _ leaf: Hash32) -> Hash32 {
        var pair = (previous, leaf)
        return Swift.withUnsafeBytes(of: &pair) { Hash32(SHA256.hash(data: $0)) }
    }

    /// The largest power of two strictly smaller than `n` (n ≥ 2).
    static func split(_ n: Int64) -> Int64 {
        var k: Int64 = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    // MARK: Proofs

    /// The hash of a complete aligned subtree: `level` (2^level leaves), `index` (its position at that level).
    public typealias SubtreeHash = (_ level: Int, _ index: Int64) throws(WardenError) -> Hash32

    /// `MTH(D[lo:hi])` for the ranges RFC 9162's proofs use (each decomposes into aligned complete subtrees).
    public static func rangeHash(_ lo: Int64, _ hi: Int64, _ subtree: SubtreeHash) throws(WardenError) -> Hash32 {
        let n = hi - lo
        guard n > 0 else { return emptyRoot }
        if n & (n - 1) == 0 && lo % n == 0 {
            return try subtree(n.trailingZeroBitCount, lo / n)
        }
        let k = split(n)
        return nodeHash(try rangeHash(lo, lo + k, subtree), try rangeHash(lo + k, hi, subtree))
    }

    /// RFC 9162 §2.1.3.1 `PATH(m, D[n])`: the inclusion proof of leaf `m` (0-based) in the tree of size `n`.
    public static func inclusionProof(leaf m: Int64, treeSize n: Int64, _ subtree: SubtreeHash) throws(WardenError)
        -> [Hash32]
    {
        guard m >= 0, m < n else { throw WardenError(.invalidRequest, "the leaf is not in a tree of that size") }
        var proof: [Hash32] = []
        var lo: Int64 = 0
        var hi = n
        // Collected from the root down; the proof lists them from the leaf up.
        while hi - lo > 1 {
            let k = split(hi - lo)
            if m < lo + k {
                proof.append(try rangeHash(lo + k, hi, subtree))
                hi = lo + k
            } else {
                proof.append(try rangeHash(lo, lo + k, subtree))
                lo += k
            }
        }
        return proof.reversed()
    }

    /// RFC 9162 §2.1.4.1 `PROOF(m, D[n])`: the consistency proof between tree sizes `m` and `n`.
    public static func consistencyProof(first m: Int64, second n: Int64, _ subtree: SubtreeHash) throws(WardenError)
        -> [Hash32]
    {
        guard m >= 1, m <= n else {
            throw WardenError(.invalidRequest, "a consistency proof needs 1 <= first <= second")
        }
        if m == n { return [] }
        var proof: [Hash32] = []
        var lo: Int64 = 0
        var hi = n
        var mm = m
        var complete = true
        while true {
            let size = hi - lo
            if mm == size {
                if !complete { proof.append(try rangeHash(lo, hi, subtree)) }
                break
            }
            let k = split(size)
            if mm <= k {
                proof.append(try rangeHash(lo + k, hi, subtree))
                hi = lo + k
            } else {
                proof.append(try rangeHash(lo, lo + k, subtree))
                lo += k
                mm -= k
                complete = false
            }
        }
        return proof.reversed()
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows `leaf` at index `m` in the tree of size `n` with `root`.
    public static func verifyInclusion(leaf: Hash32, index m: Int64, treeSize n: Int64, proof: [Hash32], root: Hash32)
        -> Bool
    {
        guard m >= 0, m < n else { return false }
        var fn = m
        var sn = n - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows the tree of size `m` with `firstRoot` is a prefix of the tree of size
    /// `n` with `secondRoot`.
    public static func verifyConsistency(
        first m: Int64, second n: Int64, firstRoot: Hash32, secondRoot: Hash32, proof: [Hash32]
    ) -> Bool {
        guard m >= 1, m <= n else { return false }
        if m == n { return proof.isEmpty && firstRoot == secondRoot }
        guard !proof.isEmpty else { return false }
        var path = proof
        if m & (m - 1) == 0 { path.insert(firstRoot, at: 0) }
        var fn = m - 1
        var sn = n - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == firstRoot && sr == secondRoot && sn == 0
    }
}

/// The right edge of a Merkle tree: the roots of its complete subtrees, largest first (one per set bit of `size`).
/// Appending a leaf costs one hash amortised; the root of the whole tree is the fold of the edge.
public struct MerkleFrontier: Sendable, Hashable {
    public private(set) var size: Int64 = 0
    public private(set) var nodes: [Hash32] = []

    public init() {}

    /// The frontier of a tree of `size` leaves from its complete subtrees, largest first.
    public init?(size: Int64, nodes: [Hash32]) {
        guard size >= 0, nodes.count == size.nonzeroBitCount else { return nil }
        self.size = size
        self.nodes = nodes
    }

    /// The complete subtrees `(level, index)` of the frontier of a tree of `size` leaves, largest first.
    public static func subtrees(of size: Int64) -> [(level: Int, index: Int64)] {
        var out: [(Int, Int64)] = []
        var start: Int64 = 0
        for level in stride(from: 62, through: 0, by: -1) where size >> level & 1 == 1 {
            out.append((level, start >> level))
            start += 1 << level
        }
        return out
    }

    /// Appends a leaf hash.
    public mutating func append(_ leaf: Hash32) {
        append(leaf) { _, _, _ in }
    }

    /// Appends a leaf hash; calls `completed` with each subtree (level ≥ 1, index, hash) that this leaf completes.
    public mutating func append(_ leaf: Hash32, completed: (Int, Int64, Hash32) throws -> Void) rethrows {
        var h = leaf
        var level = 0
        var s = size
        while s & 1 == 1 {
            h = Merkle.nodeHash(nodes.removeLast(), h)
            level += 1
            s >>= 1
            try completed(level, ((size + 1) >> level) - 1, h)
        }
        nodes.append(h)
        size += 1
    }

    /// The tree head of the leaves so far.
    public var root: Hash32 {
        guard var r = nodes.last else { return Merkle.emptyRoot }
        for n in nodes.dropLast().reversed() { r = Merkle.nodeHash(n, r) }
        return r
    }
}
