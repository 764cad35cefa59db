import Cedar
import Yams

/// Reads YAML (or JSON, which is YAML) into a ``JSONValue`` for the strict decoders of manifests and configuration.
///
/// Bounded: at most `maxBytes` of text and `maxNodes` nodes after alias expansion (so a "billion laughs" document is
/// refused, not expanded); duplicate keys are refused.
public enum YAMLReader {
    /// Parses `text`; `file` names the source in errors.
    public static func read(
        _ text: String, file: String, maxBytes: Int = 256 * 1024, maxNodes: Int = 20_000
    ) throws(WardenError) -> JSONValue {
        try readWithPlaces(text, file: file, maxBytes: maxBytes, maxNodes: maxNodes).value
    }

    /// Parses `text` and also returns where each value was written: `FILE:LINE:COLUMN` by path (`model.digest`,
    /// `tools[2]`), so decoders can point at the offending line.
    public static func readWithPlaces(
        _ text: String, file: String, maxBytes: Int = 256 * 1024, maxNodes: Int = 20_000
    ) throws(WardenError) -> (value: JSONValue, places: [String: String]) {
        guard text.utf8.count <= maxBytes else {
            throw WardenError(.invalidRequest, "\(file): larger than \(maxBytes) bytes")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw WardenError(.invalidRequest, "\(file): not valid YAML: \(Self.describe(error))")
        } catch {
            throw WardenError(.invalidRequest, "\(file): not valid YAML")
        }
        guard let node else { throw WardenError(.invalidRequest, "\(file): the document is empty") }
        var budget = maxNodes
        var places: [String: String] = [:]
        let value = try convert(node, file: file, budget: &budget, depth: 0, path: "", places: &places)
        return (value, places)
    }

    static func describe(_ error: YamlError) -> String {
        let text = "\(error)"
        // Keep the first line: Yams appends the offending source, which may hold secrets.
        return String(text.split(separator: "\n").first ?? "syntax error")
    }

    /// `FILE:LINE:COLUMN` of a node, or just the file.
    public static func place(_ node: Node, file: String) -> String {
        guard let mark = node.mark else { return file }
        return "\(file):\(mark.line):\(mark.column)"
    }

    static func convert(
        _ node: Node, file: String, budget: inout Int, depth: Int, path: String, places: inout [String: String]
    ) throws(WardenError) -> JSONValue {
        budget -= 1
        if node.mark != nil && places[path] == nil { places[path] = place(node, file: file) }
        guard budget >= 0 else { throw WardenError(.invalidRequest, "\(file): too many YAML nodes") }
        guard depth < 32 else { throw WardenError(.invalidRequest, "\(place(node, file: file)): nested too deeply") }
        if node.anchor != nil {
            throw WardenError(.invalidRequest, "\(place(node, file: file)): YAML anchors and aliases are not accepted")
        }
        switch node {
        case .alias:
            throw WardenError(.invalidRequest, "\(place(node, file: file)): YAML anchors and aliases are not accepted")
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map { .bool($0) } ?? .string(scalar.string)
            case .int: return node.int.map { .number(String($0)) } ?? .string(scalar.string)
            case .float:
                if let d = node.float, d.isFinite { return .number(String(d)) }
                return .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .sequence(let seq):
            var items: [JSONValue] = []
            for (i, item) in seq.enumerated() {
                items.append(
                    try convert(
                        item, file: file, budget: &budget, depth: depth + 1, path: "\(path)[\(i)]", places: &places))
            }
            return .array(items)
        case .mapping(let map):
            var pairs: [(String, JSONValue)] = []
            var seen = Set<String>()
            for (k, v) in map {
                guard case .scalar(let key) = k else {
                    throw WardenError(.invalidRequest, "\(place(k, file: file)): keys must be plain strings")
                }
                guard seen.insert(key.string).inserted else {
                    throw WardenError(.invalidRequest, "\(place(k, file: file)): duplicate key '\(key.string)'")
                }
                let sub = path.isEmpty ? key.string : "\(path).\(key.string)"
                places[sub] = place(k, file: file)
                pairs.append(
                    (
                        key.string,
                        try convert(v, file: file, budget: &budget, depth: depth + 1, path: sub, places: &places)
                    ))
            }
            return .object(pairs)
        }
    }
}
