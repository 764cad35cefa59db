import Foundation
import Testing

@testable import Cedar

@Suite("warden policy fmt: canonical policies, comments kept, idempotent")
struct FormatterTests {
    static let messy = """
        // Leading comment of the file.

        @id("a")   permit(principal in Role::"ops",action==Action::"call",resource) when {context.trust>=70}; // ops only
        // About b.
        // Second line about b.
        forbid(principal,action,resource)
          when { resource has risk &&
                 // an interior comment: b is kept as written
                 resource.risk == "high" };
        permit ( principal , action , resource ) unless { "a;b" like "*;*" } ;


        // Trailing comment.
        """

    @Test("policies print canonically; comments stay where they belong; a commented policy is kept verbatim")
    func formats() throws {
        let out = try CedarFormatter.format(Self.messy)
        #expect(out.hasPrefix("// Leading comment of the file.\n@id(\"a\")\npermit (\n"))
        // Comment groups keep their separating blank line.
        let grouped = try CedarFormatter.format("// header\n\n// about p\npermit(principal,action,resource);")
        #expect(grouped == "// header\n\n// about p\npermit (\n  principal,\n  action,\n  resource\n);\n")
        #expect(try CedarFormatter.format(grouped) == grouped)
        #expect(out.contains(";  // ops only") == false && out.contains("; // ops only\n"))
        #expect(out.contains("// About b.\n// Second line about b.\nforbid(principal,action,resource)"))
        #expect(out.contains("// an interior comment: b is kept as written"))
        #expect(out.contains("unless { \"a;b\" like \"*;*\" };"))
        #expect(out.hasSuffix(";\n\n// Trailing comment.\n"))
        // The same policies, and formatting twice changes nothing.
        let before = try PolicySet(text: Self.messy)
        let after = try PolicySet(text: out)
        #expect(PolicyJSON.encode(before) == PolicyJSON.encode(after))
        #expect(try CedarFormatter.format(out) == out)
    }

    @Test("every corpus policy file: the same policies after formatting, and formatting twice changes nothing")
    func corpus() throws {
        guard let dir = Self.corpusTexts() else {
            print("skipping: ../shared/cedar-corpus is absent")
            return
        }
        var checked = 0
        for (name, text) in dir {
            guard let set = try? PolicySet(text: text) else { continue }
            let out = try CedarFormatter.format(text)
            #expect(PolicyJSON.encode(try PolicySet(text: out)) == PolicyJSON.encode(set), "\(name)")
            #expect(try CedarFormatter.format(out) == out, "\(name)")
            checked += 1
        }
        #expect(checked > 6000)
    }

    /// The corpus's policy files (unpacked from `../shared/cedar-corpus/corpus-tests.tar.gz`), or nil without it.
    static func corpusTexts() -> [(String, String)]? {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let archive = root.deletingLastPathComponent().appendingPathComponent("shared/cedar-corpus/corpus-tests.tar.gz")
        guard FileManager.default.fileExists(atPath: archive.path) else { return nil }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fmt-corpus-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        guard (try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)) != nil else {
            return nil
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar", "xzf", archive.path, "-C", dir.path]
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        let folder = dir.appendingPathComponent("corpus-tests")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
            $0.hasSuffix(".cedar")
        }
        return names.sorted().compactMap { n in
            (try? String(contentsOf: folder.appendingPathComponent(n), encoding: .utf8)).map { (n, $0) }
        }
    }

    @Test("empty and comment-only files; a file that does not parse is an error")
    func edges() throws {
        #expect(try CedarFormatter.format("") == "")
        #expect(try CedarFormatter.format("// only a comment\n") == "// only a comment\n")
        #expect(throws: CedarError.self) { try CedarFormatter.format("permit (principal, action") }
        let one = try CedarFormatter.format("permit(principal,action,resource);")
        #expect(one == "permit (\n  principal,\n  action,\n  resource\n);\n")
    }
}
