/// A value of Cedar's `datetime` extension type: an instant, as a signed count of non-leap milliseconds
/// since 1970-01-01T00:00:00Z.
///
/// Semantics follow cedar-policy-core 4.12 (`src/extensions/datetime.rs`, `parse_datetime` and the
/// `DateTime` methods). Accepted text, with ASCII digits only:
/// - `YYYY-MM-DD` (midnight UTC),
/// - `YYYY-MM-DDThh:mm:ssZ` or `YYYY-MM-DDThh:mm:ss.SSSZ`,
/// - `YYYY-MM-DDThh:mm:ss(+|-)hhmm` or `YYYY-MM-DDThh:mm:ss.SSS(+|-)hhmm`.
///
/// The year is 0000–9999 in the proleptic Gregorian calendar (year 0 is a leap year), the day must
/// exist in its month, hours are 00–23, minutes and seconds 00–59 (no leap second 60), milliseconds
/// exactly three digits, and the offset's hours 00–23 and minutes 00–59. An offset is subtracted:
/// `T10:00:00+0100` is 09:00Z.
public struct CedarDatetime: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch (negative before 1970).
    public let milliseconds: Int64

    /// Creates a datetime from milliseconds since the Unix epoch.
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// The Unix epoch, `datetime("1970-01-01")`.
    public static let unixEpoch = CedarDatetime(milliseconds: 0)

    /// Parses Cedar datetime text such as `"2024-10-15"` or `"2024-10-15T11:38:02.101-0700"`. Returns
    /// `nil` for anything Cedar's `datetime()` constructor rejects. Never traps; reads at most 28 bytes.
    public static func parse(_ text: String) -> CedarDatetime? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> CedarDatetime? {
        /// The value of the `count` ASCII digits at `at`, or nil if any is not a digit or missing.
        func number(_ at: Int, _ count: Int) -> Int64? {
            guard at + count <= b.count else { return nil }
            var value: Int64 = 0
            for i in at..<(at + count) {
                let c = b[i]
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(c - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ at: Int, _ ascii: Unicode.Scalar) -> Bool {
            at < b.count && b[at] == UInt8(ascii: ascii)
        }

        // YYYY-MM-DD
        guard let year = number(0, 4), byte(4, "-"), let month = number(5, 2), byte(7, "-"),
            let day = number(8, 2)
        else { return nil }
        var hour: Int64 = 0
        var minute: Int64 = 0
        var second: Int64 = 0
        var millisecond: Int64 = 0
        var offsetMinutes: Int64 = 0
        if b.count != 10 {
            // Thh:mm:ss
            guard byte(10, "T"), let h = number(11, 2), byte(13, ":"), let m = number(14, 2), byte(16, ":"),
                let s = number(17, 2)
            else { return nil }
            (hour, minute, second) = (h, m, s)
            var i = 19
            // Optional .SSS
            if byte(i, ".") {
                guard let ms = number(i + 1, 3) else { return nil }
                millisecond = ms
                i += 4
            }
            // Z, or (+|-)hhmm, then the end of the text.
            if byte(i, "Z") {
                i += 1
            } else if byte(i, "+") || byte(i, "-") {
                let sign: Int64 = b[i] == UInt8(ascii: "+") ? 1 : -1
                guard let offsetHour = number(i + 1, 2), let offsetMinute = number(i + 3, 2) else { return nil }
                guard offsetHour < 24, offsetMinute < 60 else { return nil }
                offsetMinutes = sign * (offsetHour * 60 + offsetMinute)
                i += 5
            } else {
                return nil
            }
            guard i == b.count else { return nil }
        }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month) else { return nil }
        guard hour < 24, minute < 60, second < 60 else { return nil }

        // All fields are bounded (year 0...9999), so none of this arithmetic can overflow.
        let days = daysFromCivil(year: year, month: month, day: day)
        let secondsOfDay = hour * 3600 + minute * 60 + second - offsetMinutes * 60
        return CedarDatetime(
            milliseconds: days * CedarDuration.millisecondsPerDay + secondsOfDay * 1000 + millisecond)
    }

    static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    package static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    /// Exact for any year whose day count fits comfortably in Int64 (the parser only passes 0...9999).
    package static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
    /// Cannot overflow for any Int64 day count derived from Int64 milliseconds.
    package static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `offset`: this instant moved by `duration`; `nil` if the result overflows.
    public func offset(_ duration: CedarDuration) -> CedarDatetime? {
        let (sum, overflow) = milliseconds.addingReportingOverflow(duration.milliseconds)
        return overflow ? nil : CedarDatetime(milliseconds: sum)
    }

    /// `durationSince`: `self - other`; `nil` if the difference overflows.
    public func durationSince(_ other: CedarDatetime) -> CedarDuration? {
        let (difference, overflow) = milliseconds.subtractingReportingOverflow(other.milliseconds)
        return overflow ? nil : CedarDuration(milliseconds: difference)
    }

    /// `toDate`: midnight (UTC) of this instant's day, rounding toward negative infinity. `nil` only when
    /// that midnight is below Int64.min milliseconds (instants in the first partial day of the range).
    public func toDate() -> CedarDatetime? {
        let day = CedarDuration.millisecondsPerDay
        if milliseconds >= 0 {
            return CedarDatetime(milliseconds: milliseconds / day * day)
        }
        if milliseconds % day == 0 { return self }
        let (floored, overflow) = (milliseconds / day - 1).multipliedReportingOverflow(by: day)
        return overflow ? nil : CedarDatetime(milliseconds: floored)
    }

    /// `toTime`: the time elapsed since this instant's midnight (UTC), always in 0..<24h.
    public func toTime() -> CedarDuration {
        let day = CedarDuration.millisecondsPerDay
        let remainder = milliseconds % day
        return CedarDuration(milliseconds: remainder < 0 ? remainder + day : remainder)
    }

    /// Orders by instant.
    public static func < (lhs: CedarDatetime, rhs: CedarDatetime) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }

    /// The earliest instant a datetime string can denote: `0000-01-01T00:00:00+2359`.
    static let earliestParsable: Int64 = -62_167_305_540_000
    /// The latest instant a datetime string can denote: `9999-12-31T23:59:59.999-2359`.
    static let latestParsable: Int64 = 253_402_387_139_999
    /// The largest UTC offset a datetime string may carry, 23:59, in milliseconds.
    static let maxOffset: Int64 = 86_340_000

    /// Whether some datetime string denotes this instant, that is, whether `description` is text that
    /// `parse` accepts back. False only for instants reached by `offset` beyond what any string can write.
    public var isParsableAsText: Bool {
        (Self.earliestParsable...Self.latestParsable).contains(milliseconds)
    }

    /// ISO 8601 text: `YYYY-MM-DDThh:mm:ssZ` in UTC, with `.SSS` before the `Z` when the milliseconds are
    /// not zero. When `isParsableAsText` holds, `parse` accepts the text back as an equal value: instants
    /// whose UTC year lies just outside 0000–9999 are written in year 0000 with offset `+2359` or in year
    /// 9999 with offset `-2359`. Other instants are written in UTC with a signed, expanded year
    /// (`-0002-01-01T00:00:00Z`, `+10001-01-01T00:00:00Z`), which Cedar cannot parse.
    public var description: String {
        if isParsableAsText {
            if milliseconds < Self.earliestParsable + Self.maxOffset {
                return Self.format(local: milliseconds + Self.maxOffset, suffix: "+2359")
            }
            if milliseconds > Self.latestParsable - Self.maxOffset {
                return Self.format(local: milliseconds - Self.maxOffset, suffix: "-2359")
            }
        }
        return Self.format(local: milliseconds, suffix: "Z")
    }

    /// Formats `local` milliseconds (UTC plus the offset named by `suffix`) as ISO 8601 text.
    private static func format(local: Int64, suffix: String) -> String {
        let day = CedarDuration.millisecondsPerDay
        // Floor division and modulo; nothing is multiplied back, so no value can overflow.
        let remainder = local % day
        let days = local / day - (remainder < 0 ? 1 : 0)
        let time = remainder < 0 ? remainder + day : remainder
        let (year, month, dayOfMonth) = civilFromDays(days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value.magnitude)
            return String(repeating: "0", count: max(0, width - digits.utf8.count)) + digits
        }
        var text = ""
        if year < 0 {
            text += "-"
        } else if year > 9999 {
            text += "+"
        }
        text += pad(year, 4) + "-" + pad(month, 2) + "-" + pad(dayOfMonth, 2)
        text += "T" + pad(time / 3_600_000, 2) + ":" + pad(time / 60_000 % 60, 2) + ":" + pad(time / 1000 % 60, 2)
        if time % 1000 != 0 { text += "." + pad(time % 1000, 3) }
        return text + suffix
    }
}
