import Crypto
import Foundation
import Testing
import WardenAudit
import WardenCore

@Suite("Merkle tree (RFC 6962 / 9162)")
struct MerkleTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// The leaves and roots of the RFC 6962 test tree used by certificate-transparency implementations.
    static let leaves = [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
    ]
    .map(bytes)
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static func leafHash(_ b: [UInt8]) -> Hash32 { b.withUnsafeBytes { Merkle.leafHash($0) } }

    @Test("tree heads match the RFC 6962 test vectors; the empty tree is SHA-256 of nothing")
    func vectors() {
        #expect(
            Merkle.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var f = MerkleFrontier()
        for (i, leaf) in Self.leaves.enumerated() {
            f.append(Self.leafHash(leaf))
            #expect(f.root.hex == Self.roots[i], "size \(i + 1)")
        }
    }

    /// Leaf hashes as a subtree source, for proofs over an in-memory tree.
    static func source(_ hashes: [Hash32]) -> Merkle.SubtreeHash {
        { level, index throws(WardenError) in
            var f = MerkleFrontier()
            let start = Int(index) << level
            for h in hashes[start..<(start + (1 << level))] { f.append(h) }
            return f.root
        }
    }

    @Test("inclusion proofs verify for every leaf of trees 1...40 and fail when altered")
    func inclusion() throws {
        let hashes = (0..<40).map { Self.leafHash(Array("leaf \($0)".utf8)) }
        let sub = Self.source(hashes)
        for n in 1...40 {
            let root = try Merkle.rangeHash(0, Int64(n), sub)
            var f = MerkleFrontier()
            for h in hashes[0..<n] { f.append(h) }
            #expect(root == f.root)
            for m in 0..<n {
                let proof = try Merkle.inclusionProof(leaf: Int64(m), treeSize: Int64(n), sub)
                #expect(
                    Merkle.verifyInclusion(
                        leaf: hashes[m], index: Int64(m), treeSize: Int64(n), proof: proof, root: root))
                #expect(
                    !Merkle.verifyInclusion(
                        leaf: hashes[(m + 1) % 40], index: Int64(m), treeSize: Int64(n), proof: proof, root: root))
                if !proof.isEmpty {
                    var bad = proof
                    bad[bad.count / 2] = Self.leafHash([1])
                    #expect(
                        !Merkle.verifyInclusion(
                            leaf: hashes[m], index: Int64(m), treeSize: Int64(n), proof: bad, root: root))
                    #expect(
                        !Merkle.verifyInclusion(
                            leaf: hashes[m], index: Int64(m), treeSize: Int64(n), proof: Array(proof.dropLast()),
                            root: root))
                }
            }
        }
    }

    @Test("consistency proofs verify for every pair of sizes up to 40 and fail when altered")
    func consistency() throws {
        let hashes = (0..<40).map { Self.leafHash(Array("entry \($0)".utf8)) }
        let sub = Self.source(hashes)
        for n in 1...40 {
            let second = try Merkle.rangeHash(0, Int64(n), sub)
            for m in 1...n {
                let first = try Merkle.rangeHash(0, Int64(m), sub)
                let proof = try Merkle.consistencyProof(first: Int64(m), second: Int64(n), sub)
                #expect(
                    Merkle.verifyConsistency(
                        first: Int64(m), second: Int64(n), firstRoot: first, secondRoot: second, proof: proof),
                    "\(m) → \(n)")
                if m < n {
                    var bad = proof
                    bad[0] = Self.leafHash([2])
                    #expect(
                        !Merkle.verifyConsistency(
                            first: Int64(m), second: Int64(n), firstRoot: first, secondRoot: second, proof: bad))
                    #expect(
                        !Merkle.verifyConsistency(
                            first: Int64(m), second: Int64(n), firstRoot: second, secondRoot: second, proof: proof)
                            || m == n)
                }
            }
        }
    }

    @Test("RFC 3339 times round-trip at microsecond precision")
    func times() {
        for micros: Int64 in [0, 1, 999_999, 1_795_000_000_123_456, 4_102_444_799_999_999] {
            let text = AuditEvent.rfc3339(micros: micros)
            #expect(text.utf8.count == 27)
            #expect(AuditEvent.parseRFC3339(text) == micros, "\(text)")
        }
        #expect(AuditEvent.parseRFC3339("2026-11-24T10:00:00+01:00") == AuditEvent.parseRFC3339("2026-11-24T09:00:00Z"))
        #expect(AuditEvent.parseRFC3339("2026-11-24T10:00:00.1234567891Z") != nil)
        #expect(AuditEvent.parseRFC3339("2026-13-24T10:00:00Z") == nil)
        #expect(AuditEvent.parseRFC3339("yesterday") == nil)
    }
}
