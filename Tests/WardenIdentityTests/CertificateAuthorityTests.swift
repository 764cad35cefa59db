import Crypto
import Foundation
import Testing
import WardenCore
import WardenIdentity
import X509

/// X.509-SVIDs checked by openssl, a verifier others wrote.
@Suite("Certificate authority and X.509-SVIDs")
struct CertificateAuthorityTests {
    static let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    static func run(_ args: [String], in dir: URL) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: openssl!)
        p.arguments = args
        p.currentDirectoryURL = dir
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("an SVID from an openssl CSR verifies with openssl and carries exactly one SPIFFE URI SAN")
    func svidWithOpenSSL() throws {
        guard Self.openssl != nil else {
            print("skipping: openssl is not installed")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warden-ca-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try CertificateAuthority.generate(trustDomain: "warden.local")
        let id = try SPIFFEID.agent("support-bot", trustDomain: "warden.local")
        #expect(
            try Self.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "agent.key"], in: dir).0 == 0)
        #expect(
            try Self.run(["req", "-new", "-key", "agent.key", "-subj", "/CN=ignored", "-out", "agent.csr"], in: dir).0
                == 0)
        let csr = try String(contentsOf: dir.appendingPathComponent("agent.csr"), encoding: .utf8)
        let svid = try ca.issueSVID(csrPEM: csr, id: id)
        try ca.bundlePEM().write(to: dir.appendingPathComponent("bundle.pem"), atomically: true, encoding: .utf8)
        try ca.intermediate.serializeAsPEM().pemString.write(
            to: dir.appendingPathComponent("intermediate.pem"), atomically: true, encoding: .utf8)
        try svid.serializeAsPEM().pemString.write(
            to: dir.appendingPathComponent("svid.pem"), atomically: true, encoding: .utf8)

        let (status, out) = try Self.run(
            ["verify", "-CAfile", "bundle.pem", "-untrusted", "intermediate.pem", "-purpose", "sslclient", "svid.pem"],
            in: dir)
        #expect(status == 0, "\(out)")
        let (_, text) = try Self.run(["x509", "-in", "svid.pem", "-noout", "-text"], in: dir)
        #expect(text.components(separatedBy: "URI:spiffe://").count == 2, "\(text)")
        #expect(text.contains("URI:spiffe://warden.local/agent/support-bot"))
        #expect(text.contains("CA:FALSE"))
        #expect(text.contains("Digital Signature"))
        #expect(text.contains("TLS Web Server Authentication") && text.contains("TLS Web Client Authentication"))
        #expect(svid.notValidAfter.timeIntervalSince(svid.notValidBefore) <= 3600)
    }

    @Test("bad CSRs and foreign trust domains are refused")
    func refusals() throws {
        let ca = try CertificateAuthority.generate(trustDomain: "warden.local")
        let id = try SPIFFEID.agent("a", trustDomain: "warden.local")
        #expect(throws: WardenError(.invalidKey, "")) { try ca.issueSVID(csrPEM: "not a csr", id: id) }
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName { CommonName("x") }, privateKey: .init(key),
            attributes: CertificateSigningRequest.Attributes())
        let pem = try csr.serializeAsPEM().pemString
        _ = try ca.issueSVID(csrPEM: pem, id: id)
        #expect(throws: WardenError(.invalidKey, "")) {
            try ca.issueSVID(csrPEM: pem, id: try SPIFFEID.agent("a", trustDomain: "other.domain"))
        }
        #expect(throws: WardenError(.invalidKey, "")) {
            try ca.issueSVID(csrPEM: String(repeating: "A", count: 20_000), id: id)
        }
    }
}
