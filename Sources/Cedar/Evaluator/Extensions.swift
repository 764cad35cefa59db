/// Dispatch of extension functions and methods to the extension types.
enum Extensions {
    static func call(_ f: ExtensionFunction, _ args: [Value]) throws(CedarError) -> Value {
        guard args.count == f.arity else {
            throw CedarError(.evaluation, "\(f.rawValue) takes \(f.arity) arguments, got \(args.count)")
        }
        switch f {
        case .ip:
            let s = try string(args[0], f)
            guard let v = IPAddr.parse(s) else { throw invalid("ip", s) }
            return .ext(.ipaddr(v))
        case .decimal:
            let s = try string(args[0], f)
            guard let v = CedarDecimal.parse(s) else { throw invalid("decimal", s) }
            return .ext(.decimal(v))
        case .datetime:
            let s = try string(args[0], f)
            guard let v = CedarDatetime.parse(s) else { throw invalid("datetime", s) }
            return .ext(.datetime(v))
        case .duration:
            let s = try string(args[0], f)
            guard let v = CedarDuration.parse(s) else { throw invalid("duration", s) }
            return .ext(.duration(v))
        case .isIpv4: return .bool(try ip(args[0], f).isIPv4)
        case .isIpv6: return .bool(try ip(args[0], f).isIPv6)
        case .isLoopback: return .bool(try ip(args[0], f).isLoopback)
        case .isMulticast: return .bool(try ip(args[0], f).isMulticast)
        case .isInRange: return .bool(try ip(args[0], f).isInRange(try ip(args[1], f)))
        case .lessThan: return .bool(try decimal(args[0], f) < decimal(args[1], f))
        case .lessThanOrEqual: return .bool(try decimal(args[0], f) <= decimal(args[1], f))
        case .greaterThan: return .bool(try decimal(args[0], f) > decimal(args[1], f))
        case .greaterThanOrEqual: return .bool(try decimal(args[0], f) >= decimal(args[1], f))
        case .offset:
            let d = try datetime(args[0], f)
            guard let r = d.offset(try duration(args[1], f)) else { throw overflow(f) }
            return .ext(.datetime(r))
        case .durationSince:
            guard let r = try datetime(args[0], f).durationSince(try datetime(args[1], f)) else { throw overflow(f) }
            return .ext(.duration(r))
        case .toDate:
            guard let r = try datetime(args[0], f).toDate() else { throw overflow(f) }
            return .ext(.datetime(r))
        case .toTime: return .ext(.duration(try datetime(args[0], f).toTime()))
        case .toMilliseconds: return .long(try duration(args[0], f).toMilliseconds)
        case .toSeconds: return .long(try duration(args[0], f).toSeconds)
        case .toMinutes: return .long(try duration(args[0], f).toMinutes)
        case .toHours: return .long(try duration(args[0], f).toHours)
        case .toDays: return .long(try duration(args[0], f).toDays)
        }
    }

    /// Builds an extension value from a function name and its arguments (the JSON `__extn` escape).
    static func construct(_ name: String, _ args: [Value]) throws(CedarError) -> Value {
        guard let f = ExtensionFunction(rawValue: name) else {
            throw CedarError(.evaluation, "unknown extension function '\(name)'")
        }
        return try call(f, args)
    }

    private static func invalid(_ type: String, _ s: String) -> CedarError {
        CedarError(.evaluation, "invalid \(type) literal \(CedarString.quote(String(s.prefix(100))))")
    }

    private static func overflow(_ f: ExtensionFunction) -> CedarError {
        CedarError(.evaluation, "overflow in \(f.rawValue)()")
    }

    private static func mismatch(_ f: ExtensionFunction, _ expected: String, _ v: Value) -> CedarError {
        CedarError(.evaluation, "type error: \(f.rawValue)() needs \(expected), got \(v.typeName)")
    }

    private static func string(_ v: Value, _ f: ExtensionFunction) throws(CedarError) -> String {
        guard case .string(let s) = v else { throw mismatch(f, "a String", v) }
        return s
    }

    private static func ip(_ v: Value, _ f: ExtensionFunction) throws(CedarError) -> IPAddr {
        guard case .ext(.ipaddr(let x)) = v else { throw mismatch(f, "an ipaddr", v) }
        return x
    }

    private static func decimal(_ v: Value, _ f: ExtensionFunction) throws(CedarError) -> CedarDecimal {
        guard case .ext(.decimal(let x)) = v else { throw mismatch(f, "a decimal", v) }
        return x
    }

    private static func datetime(_ v: Value, _ f: ExtensionFunction) throws(CedarError) -> CedarDatetime {
        guard case .ext(.datetime(let x)) = v else { throw mismatch(f, "a datetime", v) }
        return x
    }

    private static func duration(_ v: Value, _ f: ExtensionFunction) throws(CedarError) -> CedarDuration {
        guard case .ext(.duration(let x)) = v else { throw mismatch(f, "a duration", v) }
        return x
    }
}
