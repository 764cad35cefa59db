/// A regular expression for JSON Schema `pattern`s that matches in time linear in the subject: the pattern is
/// compiled to a Thompson NFA and run as a Pike VM over the subject's Unicode scalars, a set of threads advanced one
/// scalar at a time with no backtracking, so a test costs O(program × subject) whatever the pattern (`^(\w+\s?)*$`
/// and other ReDoS patterns included).
///
/// `matches` has the meaning of ECMA-262 `RegExp.prototype.test` with the `u` flag and no other flag: a match
/// anywhere counts unless `^`/`$` anchor it; `^` and `$` match only at the start and end of the subject; `.` matches
/// any scalar but a line terminator (`\n`, `\r`, U+2028, U+2029); `\d`, `\w`, `\b` are ASCII; case-sensitive.
///
/// Supported: literals; escapes `\d \D \w \W \s \S \b \B \t \n \r \f \v \0 \cX \xHH \uXXXX \u{…}` (a surrogate pair
/// written as two `\u` escapes is one scalar) and escaped ASCII punctuation; `.`; classes `[…]`, `[^…]` with ranges
/// and class escapes (`[]` matches nothing, `[^]` anything); groups `(…)`, `(?:…)`, `(?<name>…)` (all plain
/// groups); `|`; quantifiers `* + ? {n} {n,} {n,m}` and their lazy forms. As in web browsers, a `{`, `}` or `]` that
/// cannot be syntax is a literal, and in a class a `-` next to a class escape is a literal. Refused (``Unsupported``):
/// backreferences, lookaround, `\p{…}`, inline modifiers, other escapes, syntax errors, and anything over the limits
/// (1,000 scalars of pattern, counts up to 1,000, 20,000 instructions, groups nested 100 deep).
struct LinearRegex: Sendable {
    /// Why a pattern was refused: a feature outside the supported subset, a syntax error or a limit.
    struct Unsupported: Error, Sendable {
        /// What was refused and where (an offset in Unicode scalars).
        let reason: String
    }

    /// The longest pattern accepted, in Unicode scalars.
    static let maxPatternScalars = 1_000
    /// The largest count in `{n}`, `{n,}` and `{n,m}`.
    static let maxRepeatCount = 1_000
    /// The largest compiled program, in instructions.
    static let maxInstructions = 20_000
    /// The deepest nesting of groups.
    static let maxNesting = 100

    /// One instruction of the compiled program.
    enum Instruction: Sendable, Equatable {
        /// Consumes this scalar value.
        case scalar(UInt32)
        /// Consumes any scalar but a line terminator.
        case any
        /// Consumes a scalar in `sets[index]`.
        case set(Int)
        /// Continues at both targets (the first is preferred; the preference does not change a test's result).
        case split(Int, Int)
        /// Continues at the target.
        case jump(Int)
        /// Continues when at the start of the subject.
        case assertStart
        /// Continues when at the end of the subject.
        case assertEnd
        /// Continues when exactly one of the scalars around the position is a word character (`\b`).
        case wordBoundary
        /// Continues when both or neither of the scalars around the position are word characters (`\B`).
        case notWordBoundary
        /// The pattern matched.
        case match
    }

    /// A set of Unicode scalar values: sorted, disjoint, non-adjacent ranges.
    struct ScalarSet: Sendable {
        /// The ranges, sorted.
        let ranges: [ClosedRange<UInt32>]

        /// The union of `ranges` (in any order, overlapping or not), or its complement in 0...0x10FFFF.
        init(_ ranges: [ClosedRange<UInt32>], negated: Bool = false) {
            let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
            var merged: [ClosedRange<UInt32>] = []
            merged.reserveCapacity(sorted.count)
            for r in sorted {
                if let last = merged.last, r.lowerBound <= last.upperBound + 1 {
                    if r.upperBound > last.upperBound { merged[merged.count - 1] = last.lowerBound...r.upperBound }
                } else {
                    merged.append(r)
                }
            }
            guard negated else {
                self.ranges = merged
                return
            }
            var complement: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for r in merged {
                if r.lowerBound > next { complement.append(next...(r.lowerBound - 1)) }
                next = r.upperBound + 1
            }
            if next <= 0x10FFFF { complement.append(next...0x10FFFF) }
            self.ranges = complement
        }

        /// Whether `value` is in the set (a binary search).
        func contains(_ value: UInt32) -> Bool {
            var low = 0
            var high = ranges.count
            while low < high {
                let mid = (low + high) / 2
                if ranges[mid].upperBound < value {
                    low = mid + 1
                } else if ranges[mid].lowerBound > value {
                    high = mid
                } else {
                    return true
                }
            }
            return false
        }
    }

    /// `\d`.
    static let digitRanges: [ClosedRange<UInt32>] = [0x30...0x39]
    /// `\w`.
    static let wordRanges: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    /// `\s`: ECMAScript's WhiteSpace and LineTerminator.
    static let spaceRanges: [ClosedRange<UInt32>] = [
        0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F,
        0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF,
    ]

    /// The compiled program; it ends with `.match`.
    let program: [Instruction]
    /// The character classes the program's `.set` instructions refer to.
    let sets: [ScalarSet]

    /// Compiles `pattern`, or throws ``Unsupported`` when it is outside the supported subset or over a limit.
    init(_ pattern: String) throws(Unsupported) {
        var scalars: [Unicode.Scalar] = []
        for scalar in pattern.unicodeScalars {
            guard scalars.count < Self.maxPatternScalars else {
                throw Unsupported(reason: "the pattern is longer than \(Self.maxPatternScalars) characters")
            }
            scalars.append(scalar)
        }
        var parser = Parser(scalars)
        let tree = try parser.parse()
        var compiler = Compiler()
        try compiler.emit(tree)
        _ = try compiler.append(.match)
        program = compiler.program
        sets = compiler.sets
    }

    /// Whether the pattern matches somewhere in `subject` (ECMAScript's `test`).
    func matches(_ subject: String) -> Bool {
        var budget = Int.max
        return matches(subject, budget: &budget) ?? false
    }

    /// Whether the pattern matches somewhere in `subject`, taking the work done from `budget` (the program's size for
    /// setting up, then the threads visited); nil when the budget runs out before the answer is known.
    func matches(_ subject: String, budget: inout Int) -> Bool? {
        budget -= program.count
        if budget < 0 { return nil }
        var threads = Threads(program: program)
        var current: [Int] = []
        var next: [Int] = []
        current.reserveCapacity(program.count)
        next.reserveCapacity(program.count)
        var scalars = subject.unicodeScalars.makeIterator()
        var here = scalars.next()?.value
        var position = 0
        threads.add(0, to: &current, generation: 0, previous: nil, here: here)
        while !threads.matched, let c = here {
            let following = scalars.next()?.value
            position += 1
            for pc in current {
                let accepted: Bool
                switch program[pc] {
                case .scalar(let x): accepted = x == c
                case .any: accepted = !Self.isLineTerminator(c)
                case .set(let k): accepted = sets[k].contains(c)
                default: accepted = false
                }
                if accepted {
                    threads.add(pc + 1, to: &next, generation: position, previous: c, here: following)
                }
            }
            // The search is unanchored: a match may also start at the next position.
            threads.add(0, to: &next, generation: position, previous: c, here: following)
            budget -= threads.work + current.count
            threads.work = 0
            if budget < 0, !threads.matched { return nil }
            swap(&current, &next)
            next.removeAll(keepingCapacity: true)
            here = following
        }
        return threads.matched
    }

    /// `\n`, `\r`, U+2028 and U+2029: the scalars `.` does not match.
    static func isLineTerminator(_ c: UInt32) -> Bool {
        c == 0x0A || c == 0x0D || c == 0x2028 || c == 0x2029
    }

    /// Whether `c` is a `\w` character (false for nil: before the start or after the end).
    static func isWord(_ c: UInt32?) -> Bool {
        guard let c else { return false }
        return (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || c == 0x5F || (0x61...0x7A).contains(c)
    }
}

// MARK: - The VM's thread list

/// Adds threads to a list, following jumps, splits and assertions (the ε-closure) with an explicit stack; a program
/// counter joins a list at most once per position (`marks` holds the position it last joined at).
private struct Threads {
    let program: [LinearRegex.Instruction]
    var marks: [Int]
    var stack: [Int] = []
    var work = 0
    var matched = false

    init(program: [LinearRegex.Instruction]) {
        self.program = program
        marks = Array(repeating: -1, count: program.count)
    }

    /// Adds `pc` and what it reaches without consuming to `list`, at the position between `previous` and `here`
    /// (nil at the start and at the end of the subject).
    mutating func add(_ pc: Int, to list: inout [Int], generation: Int, previous: UInt32?, here: UInt32?) {
        stack.append(pc)
        while let p = stack.popLast() {
            guard marks[p] != generation else { continue }
            marks[p] = generation
            work += 1
            switch program[p] {
            case .scalar, .any, .set:
                list.append(p)
            case .jump(let target):
                stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assertStart:
                if previous == nil { stack.append(p + 1) }
            case .assertEnd:
                if here == nil { stack.append(p + 1) }
            case .wordBoundary:
                if LinearRegex.isWord(previous) != LinearRegex.isWord(here) { stack.append(p + 1) }
            case .notWordBoundary:
                if LinearRegex.isWord(previous) == LinearRegex.isWord(here) { stack.append(p + 1) }
            case .match:
                matched = true
            }
        }
    }
}

// MARK: - Parsing

/// A parsed pattern. Its depth is bounded by the nesting of groups (a quantifier applies to one atom).
private indirect enum Node {
    case scalar(UInt32)
    case any
    case set(LinearRegex.ScalarSet)
    case assertStart
    case assertEnd
    case wordBoundary
    case notWordBoundary
    case concat([Node])
    case alternation([Node])
    case repetition(Node, min: Int, max: Int?, greedy: Bool)
}

/// An atom of a character class: one scalar (which can start or end a range) or a class escape's ranges.
private enum ClassAtom {
    case scalar(UInt32)
    case ranges([ClosedRange<UInt32>])

    func add(to ranges: inout [ClosedRange<UInt32>]) {
        switch self {
        case .scalar(let c): ranges.append(c...c)
        case .ranges(let r): ranges.append(contentsOf: r)
        }
    }
}

/// A recursive-descent parser; it recurses only into groups, whose nesting is bounded.
private struct Parser {
    typealias Unsupported = LinearRegex.Unsupported

    let s: [Unicode.Scalar]
    var i = 0

    init(_ scalars: [Unicode.Scalar]) {
        s = scalars
    }

    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    /// The scalar `k` places after the cursor, if any.
    func ahead(_ k: Int) -> Unicode.Scalar? { i + k < s.count ? s[i + k] : nil }

    func refuse(_ what: String, at offset: Int? = nil) -> Unsupported {
        Unsupported(reason: "\(what) at offset \(offset ?? i)")
    }

    mutating func parse() throws(Unsupported) -> Node {
        let node = try alternation(depth: 0)
        if i < s.count { throw refuse("an unmatched )") }
        return node
    }

    mutating func alternation(depth: Int) throws(Unsupported) -> Node {
        let first = try sequence(depth: depth)
        var branches = [first]
        while peek == "|" {
            i += 1
            branches.append(try sequence(depth: depth))
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func sequence(depth: Int) throws(Unsupported) -> Node {
        var items: [Node] = []
        while let c = peek, c != "|", c != ")" {
            let start = i
            let (item, quantifiable) = try parseAtom(depth: depth)
            guard let q = try quantifier() else {
                items.append(item)
                continue
            }
            guard quantifiable else { throw refuse("a quantifier after an assertion", at: start) }
            items.append(.repetition(item, min: q.min, max: q.max, greedy: q.greedy))
        }
        return items.count == 1 ? items[0] : .concat(items)
    }

    /// The atom at the cursor and whether a quantifier may follow it.
    mutating func parseAtom(depth: Int) throws(Unsupported) -> (Node, Bool) {
        guard let c = peek else { throw refuse("an unexpected end of the pattern") }
        switch c {
        case "^":
            i += 1
            return (.assertStart, false)
        case "$":
            i += 1
            return (.assertEnd, false)
        case ".":
            i += 1
            return (.any, true)
        case "(":
            let body = try group(depth: depth)
            return (body, true)
        case "[":
            let set = try characterClass()
            return (.set(set), true)
        case "\\":
            return try escape()
        case "*", "+", "?":
            throw refuse("nothing to repeat")
        case "{":
            if braces() != nil { throw refuse("nothing to repeat") }
            i += 1
            return (.scalar(c.value), true)
        default:
            i += 1
            return (.scalar(c.value), true)
        }
    }

    /// The quantifier at the cursor, if any.
    mutating func quantifier() throws(Unsupported) -> (min: Int, max: Int?, greedy: Bool)? {
        guard let c = peek else { return nil }
        let start = i
        let low: Int
        let high: Int?
        switch c {
        case "*":
            low = 0
            high = nil
            i += 1
        case "+":
            low = 1
            high = nil
            i += 1
        case "?":
            low = 0
            high = 1
            i += 1
        case "{":
            guard let b = braces() else { return nil }
            low = b.min
            high = b.max
            i = b.end
        default:
            return nil
        }
        let limit = LinearRegex.maxRepeatCount
        if low > limit || (high ?? 0) > limit {
            throw refuse("a repetition count over \(limit)", at: start)
        }
        if let high, high < low { throw refuse("a repetition range out of order", at: start) }
        var greedy = true
        if peek == "?" {
            greedy = false
            i += 1
        }
        return (min: low, max: high, greedy: greedy)
    }

    /// The `{n}`, `{n,}` or `{n,m}` at the cursor (counts saturated at 1,000,000) and the offset after it; nil when
    /// the `{` starts none (it is then a literal).
    func braces() -> (min: Int, max: Int?, end: Int)? {
        guard peek == "{" else { return nil }
        var j = i + 1
        guard let low = Self.number(s, &j) else { return nil }
        var high: Int? = low
        if j < s.count, s[j] == "," {
            j += 1
            high = Self.number(s, &j)
        }
        guard j < s.count, s[j] == "}" else { return nil }
        return (min: low, max: high, end: j + 1)
    }

    static func number(_ s: [Unicode.Scalar], _ j: inout Int) -> Int? {
        var value: Int?
        while j < s.count, let d = decimal(s[j]) {
            value = Swift.min((value ?? 0) * 10 + d, 1_000_000)
            j += 1
        }
        return value
    }

    static func decimal(_ c: Unicode.Scalar) -> Int? {
        (0x30...0x39).contains(c.value) ? Int(c.value - 0x30) : nil
    }

    static func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: c.value - 0x30
        case 0x41...0x46: c.value - 0x41 + 10
        case 0x61...0x66: c.value - 0x61 + 10
        default: nil
        }
    }

    /// A group at the cursor (on its `(`); its contents as a node.
    mutating func group(depth: Int) throws(Unsupported) -> Node {
        let start = i
        guard depth < LinearRegex.maxNesting else {
            throw refuse("groups nested deeper than \(LinearRegex.maxNesting)", at: start)
        }
        i += 1
        if peek == "?" {
            if ahead(1) == ":" {
                i += 2
            } else if ahead(1) == "=" || ahead(1) == "!" {
                throw refuse("a lookahead", at: start)
            } else if ahead(1) == "<" {
                if ahead(2) == "=" || ahead(2) == "!" { throw refuse("a lookbehind", at: start) }
                i += 2
                try groupName()
            } else {
                throw refuse("a group modifier or an unknown group", at: start)
            }
        }
        let body = try alternation(depth: depth + 1)
        guard peek == ")" else { throw refuse("a group without its )", at: start) }
        i += 1
        return body
    }

    /// Skips a group's name and its `>` (named groups are plain groups here).
    mutating func groupName() throws(Unsupported) {
        let start = i
        while let c = peek, c != ">" {
            let valid =
                c == "$" || c == "_" || (i == start ? c.properties.isIDStart : c.properties.isIDContinue)
            guard valid else { throw refuse("an invalid group name", at: start) }
            i += 1
        }
        guard peek == ">", i > start else { throw refuse("an invalid group name", at: start) }
        i += 1
    }

    /// A character class at the cursor (on its `[`).
    mutating func characterClass() throws(Unsupported) -> LinearRegex.ScalarSet {
        let start = i
        i += 1
        var negated = false
        if peek == "^" {
            negated = true
            i += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        while true {
            guard let c = peek else { throw refuse("a character class without its ]", at: start) }
            if c == "]" {
                i += 1
                break
            }
            let atomStart = i
            let first = try classAtom()
            guard peek == "-", let after = ahead(1), after != "]" else {
                first.add(to: &ranges)
                continue
            }
            i += 1
            let second = try classAtom()
            switch (first, second) {
            case (.scalar(let a), .scalar(let b)):
                guard a <= b else { throw refuse("a character range out of order", at: atomStart) }
                ranges.append(a...b)
            default:
                // A class escape at either end: the `-` is a literal.
                first.add(to: &ranges)
                ranges.append(0x2D...0x2D)
                second.add(to: &ranges)
            }
        }
        return LinearRegex.ScalarSet(ranges, negated: negated)
    }

    mutating func classAtom() throws(Unsupported) -> ClassAtom {
        guard let c = peek else { throw refuse("a character class without its ]") }
        guard c == "\\" else {
            i += 1
            return .scalar(c.value)
        }
        let start = i
        i += 1
        guard let e = peek else { throw refuse("a \\ at the end of the pattern", at: start) }
        if let ranges = Self.classEscape(e) {
            i += 1
            return .ranges(ranges)
        }
        switch e {
        case "b":
            i += 1
            return .scalar(0x08)
        case "-":
            i += 1
            return .scalar(0x2D)
        case "B":
            throw refuse("\\B in a character class", at: start)
        default:
            let scalar = try characterEscape(start: start)
            return .scalar(scalar)
        }
    }

    /// The ranges of `\d \D \w \W \s \S` (the letter after the backslash), or nil for other escapes.
    static func classEscape(_ e: Unicode.Scalar) -> [ClosedRange<UInt32>]? {
        switch e {
        case "d": LinearRegex.digitRanges
        case "D": LinearRegex.ScalarSet(LinearRegex.digitRanges, negated: true).ranges
        case "w": LinearRegex.wordRanges
        case "W": LinearRegex.ScalarSet(LinearRegex.wordRanges, negated: true).ranges
        case "s": LinearRegex.spaceRanges
        case "S": LinearRegex.ScalarSet(LinearRegex.spaceRanges, negated: true).ranges
        default: nil
        }
    }

    /// An escape outside a character class, the cursor on its backslash.
    mutating func escape() throws(Unsupported) -> (Node, Bool) {
        let start = i
        i += 1
        guard let e = peek else { throw refuse("a \\ at the end of the pattern", at: start) }
        if let ranges = Self.classEscape(e) {
            i += 1
            return (.set(LinearRegex.ScalarSet(ranges)), true)
        }
        switch e {
        case "b":
            i += 1
            return (.wordBoundary, false)
        case "B":
            i += 1
            return (.notWordBoundary, false)
        default:
            let scalar = try characterEscape(start: start)
            return (.scalar(scalar), true)
        }
    }

    /// The scalar of a character escape, the cursor after its backslash (at `start`).
    mutating func characterEscape(start: Int) throws(Unsupported) -> UInt32 {
        guard let e = peek else { throw refuse("a \\ at the end of the pattern", at: start) }
        i += 1
        if Self.decimal(e) != nil {
            guard e == "0" else { throw refuse("a backreference", at: start) }
            if let d = peek, Self.decimal(d) != nil { throw refuse("an octal escape", at: start) }
            return 0
        }
        switch e {
        case "t": return 0x09
        case "n": return 0x0A
        case "v": return 0x0B
        case "f": return 0x0C
        case "r": return 0x0D
        case "k": throw refuse("a named backreference", at: start)
        case "p", "P": throw refuse("a Unicode property escape", at: start)
        case "c":
            guard let letter = peek, (0x41...0x5A).contains(letter.value) || (0x61...0x7A).contains(letter.value)
            else { throw refuse("an invalid \\c escape", at: start) }
            i += 1
            return letter.value % 32
        case "x":
            guard let value = hex(digits: 2) else { throw refuse("an invalid \\x escape", at: start) }
            return value
        case "u":
            return try unicodeEscape(start: start)
        default:
            // Escaped ASCII punctuation is itself; other escapes are refused.
            let v = e.value
            let punctuation =
                (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v)
                || (0x7B...0x7E).contains(v)
            guard punctuation else { throw refuse("an unsupported escape \\\(e)", at: start) }
            return v
        }
    }

    /// Exactly `digits` hex digits at the cursor, consumed; nil (nothing consumed) when they are not there.
    mutating func hex(digits: Int) -> UInt32? {
        var value: UInt32 = 0
        for k in 0..<digits {
            guard let c = ahead(k), let h = Self.hexValue(c) else { return nil }
            value = value * 16 + h
        }
        i += digits
        return value
    }

    /// `\uXXXX` or `\u{…}`, the cursor after the `u`.
    mutating func unicodeEscape(start: Int) throws(Unsupported) -> UInt32 {
        if peek == "{" {
            var j = i + 1
            var value: UInt32 = 0
            var count = 0
            while j < s.count, let h = Self.hexValue(s[j]) {
                value = Swift.min(value * 16 + h, 0x110000)
                count += 1
                j += 1
            }
            guard count > 0, j < s.count, s[j] == "}", value <= 0x10FFFF else {
                throw refuse("an invalid \\u{…} escape", at: start)
            }
            i = j + 1
            return value
        }
        guard let unit = hex(digits: 4) else { throw refuse("an invalid \\u escape", at: start) }
        // A surrogate pair written as two escapes is one scalar (a lone surrogate matches nothing).
        if (0xD800...0xDBFF).contains(unit), peek == "\\", ahead(1) == "u" {
            let saved = i
            i += 2
            if let low = hex(digits: 4), (0xDC00...0xDFFF).contains(low) {
                return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            }
            i = saved
        }
        return unit
    }
}

// MARK: - Compiling

/// Emits the program of a parsed pattern (recursing as deep as the tree, which is bounded by the nesting of groups).
private struct Compiler {
    typealias Unsupported = LinearRegex.Unsupported

    /// Nodes compiled, counted so that repeated empty nodes (`((?:){1000}){1000}`) cannot take unbounded time.
    static let maxWork = 200_000

    var program: [LinearRegex.Instruction] = []
    var sets: [LinearRegex.ScalarSet] = []
    var work = 0

    static var tooLarge: Unsupported {
        Unsupported(reason: "the pattern compiles to more than \(LinearRegex.maxInstructions) instructions")
    }

    /// Appends `instruction`; its index.
    mutating func append(_ instruction: LinearRegex.Instruction) throws(Unsupported) -> Int {
        guard program.count < LinearRegex.maxInstructions else { throw Self.tooLarge }
        program.append(instruction)
        return program.count - 1
    }

    mutating func emit(_ node: Node) throws(Unsupported) {
        work += 1
        guard work <= Self.maxWork else { throw Self.tooLarge }
        switch node {
        case .scalar(let c):
            _ = try append(.scalar(c))
        case .any:
            _ = try append(.any)
        case .set(let set):
            _ = try append(.set(sets.count))
            sets.append(set)
        case .assertStart:
            _ = try append(.assertStart)
        case .assertEnd:
            _ = try append(.assertEnd)
        case .wordBoundary:
            _ = try append(.wordBoundary)
        case .notWordBoundary:
            _ = try append(.notWordBoundary)
        case .concat(let items):
            for item in items { try emit(item) }
        case .alternation(let branches):
            // split L1, L2; L1: first; jump end; L2: split …; last; end:
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k == branches.count - 1 {
                    try emit(branch)
                } else {
                    let split = try append(.split(0, 0))
                    try emit(branch)
                    let jump = try append(.jump(0))
                    jumps.append(jump)
                    program[split] = .split(split + 1, program.count)
                }
            }
            for j in jumps { program[j] = .jump(program.count) }
        case .repetition(let body, let low, let high, let greedy):
            try repetition(body, min: low, max: high, greedy: greedy)
        }
    }

    mutating func repetition(_ body: Node, min low: Int, max high: Int?, greedy: Bool) throws(Unsupported) {
        guard let high else {
            if low == 0 {
                // loop: split body, out; body; jump loop; out:
                let loop = try append(.split(0, 0))
                try emit(body)
                _ = try append(.jump(loop))
                program[loop] = branch(loop + 1, program.count, greedy)
            } else {
                // body × (low − 1); again: body; split again, out; out:
                for _ in 1..<low { try emit(body) }
                let again = program.count
                try emit(body)
                let split = try append(.split(0, 0))
                program[split] = branch(again, split + 1, greedy)
            }
            return
        }
        for _ in 0..<low { try emit(body) }
        // Each optional copy: split body, out; body; out:
        for _ in low..<high {
            let split = try append(.split(0, 0))
            try emit(body)
            program[split] = branch(split + 1, program.count, greedy)
        }
    }

    /// A split that prefers `more` (another iteration) when greedy, `fewer` when lazy.
    func branch(_ more: Int, _ fewer: Int, _ greedy: Bool) -> LinearRegex.Instruction {
        greedy ? .split(more, fewer) : .split(fewer, more)
    }
}
