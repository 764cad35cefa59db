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
        let dir = try TestSupport.temporaryDirectory("corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (status, _) = try TestSupport.run(
            "/usr/bin/env", ["tar", "xzf", corpus.appendingPathComponent("corpus-tests.tar.gz").path, "-C", dir.path])
        try #require(status == 0)
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
