import ArgumentParser
import Cedar
import Foundation
import WardenCore

struct PolicyAuthorizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorize",
        abstract: "Decide requests against a policy set and entities; prints one JSON decision per request."
    )

    @Option(name: .long, help: "Cedar policy file.")
    var policies: String

    @Option(name: .long, help: "Entities file (Cedar entities JSON).")
    var entities: String

    @Option(name: .long, help: "A request file (JSON: principal, action, resource, context).")
    var request: String?

    @Option(name: .long, help: "A batch of requests, one JSON object per line.")
    var requests: String?

    @Flag(name: .long, help: "Print the median and p99 evaluation time per request to stderr.")
    var stats = false

    func validate() throws {
        guard (request == nil) != (requests == nil) else {
            throw ValidationError("give exactly one of --request and --requests")
        }
    }

    func run() throws {
        let policySet: PolicySet
        let entitySet: Entities
        do {
            policySet = try PolicySet(text: try readText(policies))
        } catch let e as CedarError {
            throw CLIError("\(policies): \(e)")
        }
        do {
            entitySet = try CedarJSON.entities(text: try readText(entities))
        } catch let e as CedarError {
            throw CLIError("\(entities): \(e)")
        }
        let lines: [(Int, String)]
        if let request {
            lines = [(1, try readText(request))]
        } else {
            // Split on LF bytes (a Swift Character would take CR LF as one) and drop a trailing CR.
            lines = try readText(requests!).utf8.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated()
                .map {
                    (
                        $0.offset + 1,
                        String(decoding: $0.element.last == 0x0D ? $0.element.dropLast() : $0.element, as: UTF8.self)
                    )
                }
                .filter { !$0.1.trimmingCharacters(in: .whitespaces).isEmpty }
        }
        let authorizer = Authorizer()
        // Policies are named by their @id when they have one.
        let names = PolicyTestRunner.names(policySet)
        let clock = ContinuousClock()
        var timings: [Duration] = []
        timings.reserveCapacity(lines.count)
        var bad = 0
        var out = ""
        for (lineNumber, text) in lines {
            let req: Request
            do {
                req = try CedarJSON.request(JSONValue.parse(text))
            } catch {
                bad += 1
                let where_ = request ?? "\(requests!):\(lineNumber)"
                out +=
                    JSONValue.object([
                        ("decision", .string("deny")), ("reasons", .array([])), ("errors", .array([])),
                        ("error", .string("\(where_): \(error)")),
                    ]).serialized + "\n"
                continue
            }
            var response: Response!
            let elapsed = clock.measure {
                response = authorizer.isAuthorized(req, policies: policySet, entities: entitySet)
            }
            timings.append(elapsed)
            out += DecisionJSON.encode(response, names: names).serialized + "\n"
            if out.utf8.count > 1 << 16 {
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
        if stats && !timings.isEmpty {
            let s = LatencyStats(timings)
            FileHandle.standardError.write(
                "requests: \(timings.count)  median: \(s.medianMicros) µs  p99: \(s.p99Micros) µs\n".data(using: .utf8)!
            )
        }
        if bad > 0 { throw ExitCode(1) }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

func readText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("cannot read \(path)")
    }
    guard let s = String(data: data, encoding: .utf8) else { throw CLIError("\(path) is not UTF-8 text") }
    return s
}
