import Cedar
import Foundation
import Testing
import WardenCore

/// The Cedar integration-test corpus (../shared/cedar-corpus) through the same runner as `warden policy test`.
@Suite("Cedar integration corpus")
struct CorpusTests {
    @Test("every generated corpus request matches the reference decision, reasons and errors")
    func generatedCorpus() throws {
        guard let corpus = TestSupport.corpusDirectory else {
            print("skipping: ../shared/cedar-corpus is absent")
            return
        }
        let dir = try Self.unpack(corpus, "corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("corpus-tests").path)
            .filter { $0.hasSuffix(".json") && !$0.hasSuffix(".entities.json") }.sorted()
        #expect(files.count > 6000)
        var runner = PolicyTestRunner(root: dir)
        for f in files { runner.run(file: dir.appendingPathComponent("corpus-tests/\(f)").path) }
        for f in runner.failures.prefix(20) { Issue.record("\(f)") }
        #expect(runner.failed == 0)
        #expect(runner.passed > 50_000)
        print("cedar corpus: \(runner.passed) passed, \(runner.failed) failed")
    }

    /// The generated corpus unpacked into a new temporary directory (the caller removes it).
    static func unpack(_ corpus: URL, _ name: String) throws -> URL {
        let dir = try TestSupport.temporaryDirectory(name)
        let (status, _) = try TestSupport.run(
            "/usr/bin/env", ["tar", "xzf", corpus.appendingPathComponent("corpus-tests.tar.gz").path, "-C", dir.path])
        try #require(status == 0)
        return dir
    }

    /// The strict validator against the corpus's `shouldValidate`, file by file.
    @Test("the strict validator agrees with shouldValidate on every corpus test file")
    func validation() throws {
        guard let corpus = TestSupport.corpusDirectory else {
            print("skipping: ../shared/cedar-corpus is absent")
            return
        }
        let dir = try Self.unpack(corpus, "validation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("corpus-tests").path)
            .filter { $0.hasSuffix(".json") && !$0.hasSuffix(".entities.json") }.sorted()
        var agree = 0
        var disagreements: [String] = []
        var kinds: [String: Int] = [:]
        for f in files {
            let test = try JSONValue.parse(
                String(contentsOf: dir.appendingPathComponent("corpus-tests/\(f)"), encoding: .utf8))
            guard case .string(let policies)? = test["policies"], case .string(let schemaPath)? = test["schema"],
                case .bool(let expected)? = test["shouldValidate"]
            else { continue }
            let schema = try Schema(
                text: String(contentsOf: dir.appendingPathComponent(schemaPath), encoding: .utf8), file: schemaPath)
            let set = try PolicySet(text: String(contentsOf: dir.appendingPathComponent(policies), encoding: .utf8))
            let issues = Validator(schema: schema).validate(set)
            if let first = issues.first { kinds[first.kind, default: 0] += 1 }
            if issues.isEmpty == expected {
                agree += 1
            } else {
                disagreements.append(
                    "\(f): expected \(expected ? "valid" : "invalid"), got \(issues.isEmpty ? "valid" : issues.map(\.description).joined(separator: "; "))"
                )
            }
        }
        print(
            "validation: \(agree) of \(files.count) agree; first errors of the invalid ones: "
                + kinds.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        #expect(kinds.values.reduce(0, +) > 1000)  // the corpus's invalid files are found invalid, for their reasons
        for d in disagreements.prefix(30) { print("DISAGREE " + d) }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements")
    }

    @Test("every hand-written test passes (entities and contexts read by their schemas)")
    func handwritten() throws {
        guard let corpus = TestSupport.corpusDirectory else {
            print("skipping: ../shared/cedar-corpus is absent")
            return
        }
        let root = corpus.appendingPathComponent("handwritten")
        var files: [String] = []
        for group in try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("tests").path) {
            let dir = root.appendingPathComponent("tests/\(group)")
            for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) where f.hasSuffix(".json") {
                files.append("tests/\(group)/\(f)")
            }
        }
        #expect(files.count >= 20)
        var runner = PolicyTestRunner(root: root)
        for f in files.sorted() { runner.run(file: root.appendingPathComponent(f).path) }
        for f in runner.failures { Issue.record("\(f)") }
        #expect(runner.failed == 0)
        #expect(runner.passed >= 60)
        print("handwritten: \(runner.passed) passed, \(runner.failed) failed")
    }
}
