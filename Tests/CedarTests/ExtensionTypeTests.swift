import Foundation
import Testing

@testable import Cedar

// Expected values come from cedar-policy-core 4.12's own unit tests (src/extensions/{ipaddr,decimal,
// datetime}.rs) and from running the same inputs through cedar-policy 4.12.0.

// MARK: - ipaddr

@Suite struct IPAddrTests {
    private func ip(_ s: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> IPAddr {
        try #require(IPAddr.parse(s), "expected \(s) to parse", sourceLocation: sourceLocation)
    }

    @Test(arguments: [
        "127.0.0.1", "0.0.0.0", "255.255.255.255", "10.0.0.0/8", "127.0.0.1/0", "127.0.0.1/32",
        "::1", "::", "::/0", "ffee::/0", "ffee::/128", "ffee::/64", "::ffff:ff00:1", "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1::", "FFFF::", "fFfF::AbCd", "0000:0000:0000:0000:0000:0000:0000:0001",
        "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128", "0000:0000:0000:0000:0000:0000:0000:0001/128",
        "1.2.3.4/32", "1.2.3.4/9",
    ])
    func accepts(_ text: String) {
        #expect(IPAddr.parse(text) != nil)
    }

    @Test(arguments: [
        // from the Rust tests
        "380.0.0.1", "?", "ab.ab.ab.ab", "foo::1", "::ffff:127.0.0.1", "::127.0.0.1", "127.0.0.1/8/24",
        "fee::/64::1", "172.0.0.1/64", "ffee::/132", "ffee::/+1", "ffee::/01", "ffee::/1234", "10.0.0.0/33",
        // leading zeros in IPv4 octets and in prefixes
        "0127.0.0.1", "127.0.0.01", "127.0.0.1/08", "0.0.0.0/00", "::1/0128",
        // malformed
        "", "/", "/8", "1.2.3.4/", "1.2.3.4/ 8", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "1.2.3.256",
        "1..2.3", ":::", "1::2::3", "1::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:8:9", "12345::",
        "::1.2", "::g", "1.2.3.4/33", "::/129", "::/256", "1.2.3.4/-1", "1.2.3.4/٣", "١.2.3.4", "::1\n",
        // longer than 43 bytes
        "0000:0000:0000:0000:0000:0000:0000:0001/0128", "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128 ",
    ])
    func rejects(_ text: String) {
        #expect(IPAddr.parse(text) == nil)
    }

    @Test func families() throws {
        #expect(try ip("127.0.0.1").isIPv4)
        #expect(try !ip("127.0.0.1").isIPv6)
        #expect(try ip("::1").isIPv6)
        #expect(try !ip("::1").isIPv4)
        #expect(try ip("::ffff:ff00:1").isIPv6)
        #expect(try ip("127.0.0.1/24").isIPv4)
        #expect(try ip("ffee::/64").isIPv6)
    }

    @Test(arguments: [
        ("127.0.0.2", true), ("::1", true), ("::2", false), ("127.255.200.200/0", false), ("127.0.0.1/8", true),
        ("127.0.0.1/7", false), ("::1/128", true), ("::1/127", false), ("::ffff:7f00:1", false), ("128.0.0.1", false),
    ])
    func loopback(_ text: String, _ expected: Bool) throws {
        #expect(try ip(text).isLoopback == expected)
    }

    @Test(arguments: [
        ("228.228.228.0", true), ("224.0.0.0/3", false), ("224.0.0.0/4", true), ("224.0.0.0/5", true),
        ("ff00::/7", false), ("ff00::/8", true), ("ff00::/9", true), ("127.0.0.1", false), ("127.0.0.1/1", false),
        ("ff00::2", true), ("FFFF::", true), ("239.255.255.255", true), ("240.0.0.0", false),
        ("255.255.255.255", false), ("fe00::", false),
    ])
    func multicast(_ text: String, _ expected: Bool) throws {
        #expect(try ip(text).isMulticast == expected)
    }

    @Test(arguments: [
        ("192.168.0.1/24", "192.168.0.1/24", true), ("192.168.0.1", "192.168.0.1/28", true),
        ("192.168.0.10", "192.168.0.1/24", true), ("192.168.0.10", "192.168.0.1/28", true),
        ("192.168.0.75", "192.168.0.1/24", true), ("192.168.0.75", "192.168.0.1/28", false),
        ("192.168.0.1", "192.168.0.1", true), ("1:2:3:4::", "1:2:3:4::/48", true),
        ("1:2:3:4::", "1:2:3:4::/52", true), ("1:2:3:6::", "1:2:3:4::/48", true),
        ("1:2:3:6::", "1:2:3:4::/52", true), ("1:2:3:ffff::", "1:2:3:4::/48", true),
        ("1:2:3:ffff::", "1:2:3:4::/52", false), ("1:2:3:4::", "1:2:3:4::", true),
        ("192.168.0.1", "1:2:3:4::/48", false), ("::ffff:c0a8:1", "192.168.0.0/16", false),
        ("10.0.0.0", "10.0.0.0/24", true), ("10.0.0.0", "10.0.0.0/32", true), ("10.0.0.0", "10.0.0.1/24", true),
        ("10.0.0.0", "10.0.0.1/32", false), ("10.0.0.1", "10.0.0.0/24", true), ("10.0.0.1", "10.0.0.1/24", true),
        ("10.0.0.0/24", "10.0.0.0/32", false), ("10.0.0.0/32", "10.0.0.0/24", true),
        ("10.0.0.1/24", "10.0.0.0/24", true), ("10.0.0.1/24", "10.0.0.1/24", true),
        ("10.0.0.0/24", "10.0.0.1/24", true), ("10.0.0.0/24", "10.0.0.0/29", false),
        ("10.0.0.0/29", "10.0.0.0/24", true), ("10.0.0.0/24", "10.0.0.1/29", false),
        ("10.0.0.0/29", "10.0.0.1/24", true), ("10.0.0.1/24", "10.0.0.0/29", false),
        ("10.0.0.1/29", "10.0.0.0/24", true), ("10.0.0.0/32", "10.0.0.0/32", true),
        ("10.0.0.0/32", "10.0.0.0", true), ("8.8.8.8", "0.0.0.0/0", true), ("0.0.0.0/0", "8.8.8.8/0", true),
        ("::", "::/0", true), ("ffff::/0", "::/0", true), ("::/0", "::/1", false),
    ])
    func inRange(_ child: String, _ parent: String, _ expected: Bool) throws {
        #expect(try ip(child).isInRange(ip(parent)) == expected)
    }

    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1", true), ("192.168.0.1", "8.8.8.8", false), ("127.0.0.1", "::1", false),
        ("127.0.0.1", "192.168.0.1/24", false), ("192.168.0.1/24", "8.8.8.8/8", false),
        ("10.0.0.0", "10.0.0.0", true), ("10.0.0.0", "10.0.0.1", false), ("10.0.0.0/32", "10.0.0.0", true),
        ("10.0.0.0/24", "10.0.0.0", false), ("10.0.0.0/32", "10.0.0.0/32", true),
        ("10.0.0.0/24", "10.0.0.0/32", false), ("10.0.0.0/24", "10.0.0.1/24", false),
        ("10.0.0.1/24", "10.0.0.1/29", false), ("::1", "0:0:0:0:0:0:0:1", true), ("FFEE::", "ffee::/128", true),
        ("10.0.0.1/8", "10.0.0.0/8", false), ("0.0.0.0", "::", false),
    ])
    func equality(_ a: String, _ b: String, _ expected: Bool) throws {
        #expect(try (ip(a) == ip(b)) == expected)
        if expected { #expect(try ip(a).hashValue == ip(b).hashValue) }
    }

    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1/32"), ("ffee::11", "ffee::11/128"), ("127.0.0.1/0", "127.0.0.1/0"),
        ("127.0.0.1/8", "127.0.0.1/8"), ("ffee::/64", "ffee::/64"), ("::", "::/128"), ("::1", "::1/128"),
        ("0:0:0:0:0:0:0:1/64", "::1/64"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3/128"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4/128"),
        ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0/128"), ("ABCD:EF01::", "abcd:ef01::/128"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0/128"),
        ("::ffff:ff00:1", "::ffff:ff00:1/128"), ("::ffff:a00:1", "::ffff:a00:1/128"), ("00FF::0001", "ff::1/128"),
    ])
    func description(_ text: String, _ expected: String) throws {
        let value = try ip(text)
        #expect(value.description == expected)
        #expect(IPAddr.parse(value.description) == value)
    }
}

// MARK: - decimal

@Suite struct CedarDecimalTests {
    @Test(
        arguments: [
            ("1.0", 10_000), ("-1.0", -10_000), ("123.456", 1_234_560), ("0.1234", 1234), ("-0.0123", -123),
            ("55.1", 551_000), ("00.000", 0), ("-0.0", 0), ("-0.5", -5000), ("-0.0001", -1), ("0123.0", 1_230_000),
            ("922337203685477.5807", Int64.max), ("-922337203685477.5808", Int64.min),
            ("00000000000000000000000000001.0", 10_000), ("-00000000000000000000000000001.0", -10_000),
        ] as [(String, Int64)])
    func parses(_ text: String, _ raw: Int64) {
        #expect(CedarDecimal.parse(text)?.raw == raw)
    }

    @Test(arguments: [
        "1234", "1.0.", "1.", ".1", "1.a", "-.", "", "-", ".", "-1", "+1.0", "1.0 ", " 1.0", "1.0\n", "1e3.0",
        "1,0", "--1.0", "1.-0", "1.٣", "١.3",
        // overflow
        "1000000000000000.0", "922337203685477.5808", "-922337203685477.5809", "-922337203685478.0",
        "9223372036854775807.0", "-9223372036854775808.0", "99999999999999999999999.0",
        // too many fractional digits, even zeros
        "0.12345", "0.00000",
    ])
    func rejects(_ text: String) {
        #expect(CedarDecimal.parse(text) == nil)
    }

    @Test func equalityAndOrder() throws {
        let d = { (s: String) throws -> CedarDecimal in try #require(CedarDecimal.parse(s)) }
        #expect(try d("123.0") == d("123.0000"))
        #expect(try d("123.0000") == d("0123.0"))
        #expect(try d("123.0") != d("123.456"))
        #expect(try d("123.0") != d("1.23"))
        #expect(try d("0.0") == d("-0.0"))
        #expect(try d("1.23") < d("1.24"))
        #expect(try !(d("1.23") < d("1.23")))
        #expect(try !(d("123.45") < d("1.23")))
        #expect(try d("-1.23") < d("1.23"))
        #expect(try d("-1.24") < d("-1.23"))
        #expect(try d("-0.5") < d("0.0"))
        #expect(try d("1.05") == d("1.050"))
    }

    @Test(arguments: [
        ("123.0", "123.0"), ("1.2300", "1.23"), ("123.4560", "123.456"), ("-123.4560", "-123.456"), ("0.0", "0.0"),
        ("-0.0", "0.0"), ("1.05", "1.05"), ("-0.5", "-0.5"), ("0.0001", "0.0001"), ("-0.0001", "-0.0001"),
        ("922337203685477.5807", "922337203685477.5807"), ("-922337203685477.5808", "-922337203685477.5808"),
    ])
    func description(_ text: String, _ expected: String) throws {
        let value = try #require(CedarDecimal.parse(text))
        #expect(value.description == expected)
        #expect(CedarDecimal.parse(value.description) == value)
    }
}

// MARK: - duration

@Suite struct CedarDurationTests {
    @Test(
        arguments: [
            ("1h", 3_600_000), ("-10h", -36_000_000), ("5d3ms", 432_000_003), ("-3h5m", -11_100_000),
            ("1d2h3m4s50ms", 93_784_050), ("-1d2h3m4s50ms", -93_784_050), ("1ms", 1), ("1m", 60_000),
            ("1m1ms", 60_001), ("1s", 1000), ("0ms", 0), ("-0ms", 0), ("-3d", -259_200_000), ("72h", 259_200_000),
            ("00000000000000000000000000000000000001ms", 1), ("106751991167d", 9_223_372_036_828_800_000),
            ("106751991167d7h12m55s807ms", Int64.max), ("-106751991167d7h12m55s808ms", Int64.min),
            ("9223372036854775807ms", Int64.max), ("-9223372036854775808ms", Int64.min),
        ] as [(String, Int64)])
    func parses(_ text: String, _ milliseconds: Int64) {
        #expect(CedarDuration.parse(text)?.milliseconds == milliseconds)
    }

    @Test(arguments: [
        // from the Rust tests
        "", "a", "-", "-1", "➖1ms", "11dd", "00000mm", "-d", "-h", "-1hh", "-h2d", "-ms", "1ms1s", "1ms1m", "1ms1h",
        "0ms1d", "1s1m", "1s1h", "0s0d", "0m0h", "0m0d", "1h1d", "1ms1m1d", "1dd2h3m4s50ms",
        // overflow
        "106751991167d7h12m55s808ms", "-106751991167d7h12m55s809ms", "9223372036854775808ms",
        "-9223372036854775809ms", "106751991168d", "18446744073709551616ms", "99999999999999999999999d",
        // other malformed input
        "1d1d", "+1ms", "1D", "1d ", " 1d", "1", "d", "1.5h", "1h-1m", "--1h", "1m s", "1µs", "1ns", "1w", "٣d",
    ])
    func rejects(_ text: String) {
        #expect(CedarDuration.parse(text) == nil)
    }

    @Test func conversionsTruncateTowardZero() throws {
        for text in ["10d23h59m58s999ms", "-10d23h59m58s999ms"] {
            let d = try #require(CedarDuration.parse(text))
            let hours: Int64 = 10 * 24 + 23
            let minutes: Int64 = hours * 60 + 59
            let seconds: Int64 = minutes * 60 + 58
            let milliseconds: Int64 = seconds * 1000 + 999
            #expect(abs(d.toDays) == 10)
            #expect(abs(d.toHours) == hours)
            #expect(abs(d.toMinutes) == minutes)
            #expect(abs(d.toSeconds) == seconds)
            #expect(abs(d.toMilliseconds) == milliseconds)
        }
        let d = try #require(CedarDuration.parse("1d2h3m4s50ms"))
        #expect(
            [d.toMilliseconds, d.toSeconds, d.toMinutes, d.toHours, d.toDays] == [93_784_050, 93_784, 1563, 26, 1])
        let n = try #require(CedarDuration.parse("-1d2h3m4s50ms"))
        #expect(
            [n.toMilliseconds, n.toSeconds, n.toMinutes, n.toHours, n.toDays] == [-93_784_050, -93_784, -1563, -26, -1])
        #expect(CedarDuration(milliseconds: -1).toSeconds == 0)
        #expect(CedarDuration(milliseconds: -1999).toSeconds == -1)
        #expect(CedarDuration(milliseconds: Int64.min).toDays == -106_751_991_167)
    }

    @Test func orderAndEquality() throws {
        let d = { (s: String) throws -> CedarDuration in try #require(CedarDuration.parse(s)) }
        #expect(try d("-2h") < d("1h"))
        #expect(try d("-3d") == d("-72h"))
        #expect(try d("2h") > d("1h"))
        #expect(try d("1d") == d("24h"))
    }

    @Test func description() throws {
        for ms in [0, 1, -1, 93_784_050, Int64.max, Int64.min] as [Int64] {
            let d = CedarDuration(milliseconds: ms)
            #expect(d.description == "\(ms)ms")
            #expect(CedarDuration.parse(d.description) == d)
        }
    }
}

// MARK: - datetime

@Suite struct CedarDatetimeTests {
    private func dt(_ s: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> CedarDatetime {
        try #require(CedarDatetime.parse(s), "expected \(s) to parse", sourceLocation: sourceLocation)
    }
    private func dur(_ s: String) throws -> CedarDuration { try #require(CedarDuration.parse(s)) }

    @Test(
        arguments: [
            ("1970-01-01", 0), ("2024-10-15", 1_728_950_400_000), ("2024-10-15T11:38:02Z", 1_728_992_282_000),
            ("2024-10-15T11:38:02.101Z", 1_728_992_282_101), ("2024-10-15T11:38:02.101+1134", 1_728_950_642_101),
            ("2024-10-15T11:38:02.101-1134", 1_729_033_922_101), ("2024-10-28", 1_730_073_600_000),
            ("2024-10-28T01:22:33.456Z", 1_730_078_553_456), ("2024-10-28T10:12:13.456-0700", 1_730_135_533_456),
            ("1900-01-01", -2_208_988_800_000), ("2000-02-29", 951_782_400_000), ("0000-01-01", -62_167_219_200_000),
            ("0000-01-01T00:00:00+2359", -62_167_305_540_000), ("9999-12-31T23:59:59.999-2359", 253_402_387_139_999),
            ("1969-12-31T23:59:59.999Z", -1), ("2024-01-01T00:00:00.000+0000", 1_704_067_200_000),
            ("2024-01-01T00:00:00-0000", 1_704_067_200_000),
        ] as [(String, Int64)])
    func parses(_ text: String, _ milliseconds: Int64) {
        #expect(CedarDatetime.parse(text)?.milliseconds == milliseconds)
    }

    @Test func offsetsMatchRustTests() throws {
        let pairs = [
            ("2024-10-15T11:38:02+1134", "2024-10-15T00:04:02Z"), ("2024-10-15T11:38:02-1134", "2024-10-15T23:12:02Z"),
            ("2024-10-15T23:59:00+2359", "2024-10-15T00:00:00Z"), ("2024-10-15T00:00:00-2359", "2024-10-15T23:59:00Z"),
            ("2024-10-28T10:12:13.456-0700", "2024-10-28T17:12:13.456Z"),
        ]
        for (a, b) in pairs { #expect(try dt(a) == dt(b)) }
    }

    @Test(arguments: [
        // from the Rust tests
        "", "a", "-", "-1", "11-12-13", "1111-1x-20", "2024-10-15Z", "2024-10-15T11:38:02ZZ", "0000-0a-01",
        "10000-01-01", "10000-01-01T00:00:00Z", "2024-00-01", "2024-01-00", "2024-02-30", "2025-02-29", "2024-20-01",
        "2024-01-32", "2024-01-99", "2024-04-31", "2024-01-01T", "2024-01-01Ta", "2024-01-01T01:", "2024-01-01T01:02",
        "2024-01-01T01:02:0b", "2024-01-01T01::02:03", "2024-01-01T01::02::03", "2024-01-01T31:02:03Z",
        "2024-01-01T01:60:03Z", "2016-12-31T23:59:60Z", "2016-12-31T23:59:61Z", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00T", "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00x001Z", "2024-01-01T00:00:00.001ZZ",
        "2024-01-01T00:00:00➕0000", "2024-01-01T00:00:00➖0000", "2024-01-01T00:00:00.0001Z",
        "2024-01-01T00:00:00.001➖0000", "2024-01-01T00:00:00.001➕0000", "2024-01-01T00:00:00.001+00000",
        "2024-01-01T00:00:00.001-00000", "2016-12-31T00:00:00+1160", "2016-12-31T00:00:00+1199",
        "2016-12-31T00:00:00+2400", "22024-30-28T10:12:13.456-0700",
        // other malformed input
        "1900-02-29", "2100-02-29", "2024-01-01T24:00:00Z", "2024-01-01t00:00:00Z", "2024-01-01T00:00:00z",
        "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.1Z", "2024-01-01T00:00:00.12Z", "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00+00", "+2024-01-01", "-2024-01-01", "2024-1-01", "2024-01-1", "2024-01-01\n",
        " 2024-01-01", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00,000Z", "２０２４-01-01", "2024-٠1-01",
    ])
    func rejects(_ text: String) {
        #expect(CedarDatetime.parse(text) == nil)
    }

    @Test(arguments: [
        ("0000-02-29", true), ("0400-02-29", true), ("1600-02-29", true), ("2000-02-29", true),
        ("2024-02-29", true), ("1700-02-29", false), ("1900-02-29", false), ("2023-02-29", false),
        ("9996-02-29", true), ("0004-02-29", true), ("0100-02-29", false),
    ])
    func leapYears(_ text: String, _ valid: Bool) {
        #expect((CedarDatetime.parse(text) != nil) == valid)
    }

    @Test func dayBoundariesAgreeWithCivilCalendar() throws {
        // Consecutive dates one day apart across month, year and century boundaries.
        for (a, b) in [
            ("1999-12-31", "2000-01-01"), ("2000-02-28", "2000-02-29"), ("2000-02-29", "2000-03-01"),
            ("1900-02-28", "1900-03-01"), ("0000-12-31", "0001-01-01"), ("1969-12-31", "1970-01-01"),
            ("9999-12-30", "9999-12-31"),
        ] {
            #expect(try dt(b).milliseconds - dt(a).milliseconds == 86_400_000)
        }
    }

    @Test func offsetAndOverflow() throws {
        let epoch = CedarDatetime.unixEpoch
        let max = try #require(epoch.offset(dur("106751991167d7h12m55s807ms")))
        let min = try #require(epoch.offset(dur("-106751991167d7h12m55s808ms")))
        #expect(max.milliseconds == Int64.max)
        #expect(min.milliseconds == Int64.min)
        #expect(try max.offset(dur("1ms")) == nil)
        #expect(try max.offset(dur("-1ms"))?.milliseconds == Int64.max - 1)
        #expect(try min.offset(dur("-1ms")) == nil)
        #expect(try min.offset(dur("1ms"))?.milliseconds == Int64.min + 1)
        #expect(try epoch.offset(dur("1d")) == dt("1970-01-02"))
        #expect(try epoch.offset(dur("-1d")) == dt("1969-12-31"))
        #expect(try dt("2024-10-28T10:12:13.456-0700").offset(dur("-7h")) == dt("2024-10-28T10:12:13.456Z"))
        #expect(try dt("2024-10-28T10:12:13.456+0700").offset(dur("7h")) == dt("2024-10-28T10:12:13.456Z"))
    }

    @Test func durationSince() throws {
        let epoch = CedarDatetime.unixEpoch
        let today = try dt("2024-10-24")
        let yesterday = try dt("2024-10-23")
        #expect(try today.durationSince(epoch) == dur("20020d"))
        #expect(try yesterday.durationSince(today) == dur("-1d"))
        #expect(try today.durationSince(yesterday) == dur("1d"))
        #expect(today.durationSince(CedarDatetime(milliseconds: Int64.min)) == nil)
        #expect(CedarDatetime(milliseconds: Int64.min).durationSince(epoch)?.milliseconds == Int64.min)
        #expect(epoch.durationSince(CedarDatetime(milliseconds: Int64.min)) == nil)
        #expect(try dt("2024-10-28T10:12:13.456+0700").durationSince(dt("2024-10-28T10:12:13.456Z")) == dur("-7h"))
        #expect(try dt("2024-10-28T10:12:13.456-0700").durationSince(dt("2024-10-28T10:12:13.456Z")) == dur("7h"))
    }

    @Test func toDateAndToTimeFloor() throws {
        let maxDayOffset = try dur("23h59m59s999ms")
        let minDayOffset = try dur("-23h59m59s999ms")
        for d in [try dt("2024-10-24"), try dt("2024-10-23"), CedarDatetime.unixEpoch, try dt("1900-01-01")] {
            #expect(d.toDate() == d)
            #expect(d.offset(maxDayOffset)?.toDate() == d)
            #expect(try d.offset(minDayOffset)?.toDate() == d.offset(dur("-1d")))
            #expect(d.offset(maxDayOffset)?.toTime() == maxDayOffset)
            #expect(try d.offset(minDayOffset)?.toTime() == dur("1ms"))
        }
        #expect(try dt("2024-10-28T10:12:13.456+0700").toDate() == dt("2024-10-28"))
        #expect(try dt("2024-10-28T10:12:13.456-0700").toDate() == dt("2024-10-28"))
        #expect(try dt("2024-10-28T10:12:13.456+0700").toTime() == dur("3h12m13s456ms"))
        #expect(try dt("2024-10-28T10:12:13.456-0700").toTime() == dur("17h12m13s456ms"))
        #expect(try dt("1969-12-31T23:59:59.999Z").toDate() == dt("1969-12-31"))
        #expect(try dt("1969-12-31T23:59:59.999Z").toTime() == dur("23h59m59s999ms"))
        // toDate overflows only in the first partial day of the Int64 range.
        #expect(CedarDatetime(milliseconds: Int64.min).toDate() == nil)
        #expect(CedarDatetime(milliseconds: -9_223_372_036_828_800_001).toDate() == nil)
        #expect(
            CedarDatetime(milliseconds: -9_223_372_036_828_800_000).toDate()?.milliseconds == -9_223_372_036_828_800_000
        )
        #expect(
            CedarDatetime(milliseconds: -9_223_372_036_828_799_999).toDate()?.milliseconds == -9_223_372_036_828_800_000
        )
        #expect(CedarDatetime(milliseconds: Int64.max).toDate()?.milliseconds == 9_223_372_036_828_800_000)
        #expect(CedarDatetime(milliseconds: Int64.min).toTime().milliseconds == 60_424_192)
        #expect(CedarDatetime(milliseconds: Int64.max).toTime().milliseconds == 25_975_807)
    }

    @Test func comparisons() throws {
        #expect(try dt("2024-10-28T10:12:13.456-0700") > dt("2024-10-28T10:12:13.456Z"))
        #expect(try dt("2024-10-28T10:12:13.456-0700") == dt("2024-10-28T17:12:13.456Z"))
        #expect(try dt("2024-10-28T10:12:13.456-0700") < dt("2024-10-28T17:12:13.456-0800"))
        #expect(try dt("1900-01-01") <= CedarDatetime.unixEpoch)
    }

    @Test(arguments: [
        ("2024-10-15", "2024-10-15T00:00:00Z"), ("2024-10-15T11:38:02.101+1134", "2024-10-15T00:04:02.101Z"),
        ("0000-01-01T00:00:00+2359", "0000-01-01T00:00:00+2359"),
        ("9999-12-31T23:59:59.999-2359", "9999-12-31T23:59:59.999-2359"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"), ("0000-02-29T12:00:00Z", "0000-02-29T12:00:00Z"),
    ])
    func description(_ text: String, _ expected: String) throws {
        let value = try dt(text)
        #expect(value.description == expected)
        #expect(value.isParsableAsText)
        #expect(CedarDatetime.parse(expected) == value)
    }

    @Test func descriptionOfExtremes() {
        // Must not trap anywhere in the Int64 range.
        #expect(CedarDatetime(milliseconds: Int64.min).description.hasPrefix("-"))
        #expect(CedarDatetime(milliseconds: Int64.max).description.hasPrefix("+"))
        #expect(CedarDatetime(milliseconds: -62_167_219_200_000).description == "0000-01-01T00:00:00Z")
        #expect(CedarDatetime(milliseconds: -62_167_219_200_001).description == "0000-01-01T23:58:59.999+2359")
        #expect(CedarDatetime(milliseconds: 253_402_300_800_000).description == "9999-12-31T00:01:00-2359")
        // Instants no datetime string can denote (reachable only through `offset`).
        let beforeEarliest = CedarDatetime(milliseconds: -62_167_305_540_001)
        let afterLatest = CedarDatetime(milliseconds: 253_402_387_140_000)
        #expect(!beforeEarliest.isParsableAsText)
        #expect(!afterLatest.isParsableAsText)
        #expect(beforeEarliest.description == "-0001-12-31T00:00:59.999Z")
        #expect(afterLatest.description == "+10000-01-01T23:59:00Z")
        #expect(CedarDatetime.parse(beforeEarliest.description) == nil)
        #expect(CedarDatetime.parse(afterLatest.description) == nil)
    }
}

// MARK: - fuzz

/// Seeded fuzzing of the four parsers: no input may trap, every accepted value must survive a round
/// trip through `description`, and order must agree with the underlying integers. Scale the number of
/// iterations with `CEDAR_FUZZ_ITERATIONS` (default 3000).
@Suite struct ExtensionTypeFuzzTests {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static var iterations: Int {
        ProcessInfo.processInfo.environment["CEDAR_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 3000
    }

    static let alphabet: [Character] =
        Array("0123456789abcdefABCDEF:./-+TZdhms ") + ["٣", "é", "\u{0}", "\n", "➖", "𝟙", "１"]

    static let seeds = [
        "127.0.0.1", "::1", "10.0.0.0/8", "ff00::/8", "::ffff:ff00:1", "1:2:3:4:5:6:7:8", "1.25", "-0.0001",
        "922337203685477.5807", "1d2h3m4s5ms", "-9223372036854775808ms", "2024-10-15T11:38:02.101+1134",
        "2024-02-29", "9999-12-31T23:59:59.999-2359",
    ]

    static func mutate(_ s: String, _ rng: inout SplitMix64) -> String {
        var chars = Array(s)
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let position = Int.random(in: 0...chars.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0 where !chars.isEmpty: chars.remove(at: min(position, chars.count - 1))
            case 1: chars.insert(alphabet.randomElement(using: &rng)!, at: position)
            default:
                if !chars.isEmpty { chars[min(position, chars.count - 1)] = alphabet.randomElement(using: &rng)! }
            }
        }
        return String(chars)
    }

    @Test func parsersNeverTrapAndRoundTrip() {
        var rng = SplitMix64(state: 0xCEDA_2024)
        for _ in 0..<Self.iterations {
            let text = Self.mutate(Self.seeds.randomElement(using: &rng)!, &rng)
            if let v = IPAddr.parse(text) {
                #expect(IPAddr.parse(v.description) == v, "\(text)")
                #expect(v.isInRange(v))
                #expect(v.isIPv4 != v.isIPv6)
            }
            if let v = CedarDecimal.parse(text) { #expect(CedarDecimal.parse(v.description) == v, "\(text)") }
            if let v = CedarDuration.parse(text) { #expect(CedarDuration.parse(v.description) == v, "\(text)") }
            if let v = CedarDatetime.parse(text) {
                #expect(v.isParsableAsText)
                #expect(CedarDatetime.parse(v.description) == v, "\(text)")
                #expect(v.toDate().map { $0.milliseconds + v.toTime().milliseconds } == v.milliseconds)
            }
        }
    }

    @Test func randomInstantsRoundTripThroughText() {
        var rng = SplitMix64(state: 42)
        // Every instant some datetime string can denote, including the offset-only edges.
        let low = CedarDatetime.earliestParsable
        let high = CedarDatetime.latestParsable
        for _ in 0..<Self.iterations {
            let v = CedarDatetime(milliseconds: Int64.random(in: low...high, using: &rng))
            #expect(CedarDatetime.parse(v.description) == v, "\(v.milliseconds)")
            let time = v.toTime().milliseconds
            #expect(time >= 0 && time < 86_400_000)
            let any = CedarDatetime(milliseconds: Int64.random(in: Int64.min...Int64.max, using: &rng))
            _ = any.description
            if let date = any.toDate() { #expect(date.milliseconds + any.toTime().milliseconds == any.milliseconds) }
        }
    }

    @Test func hugeInputsAreBounded() {
        let digits = String(repeating: "9", count: 200_000)
        let zeros = String(repeating: "0", count: 200_000)
        #expect(CedarDecimal.parse(digits + ".0") == nil)
        #expect(CedarDecimal.parse("-" + zeros + "1.5")?.raw == -15_000)
        #expect(CedarDuration.parse(zeros + "1ms")?.milliseconds == 1)
        #expect(CedarDuration.parse(digits + "d") == nil)
        #expect(IPAddr.parse(String(repeating: ":", count: 100_000)) == nil)
        #expect(CedarDatetime.parse("2024-01-01" + zeros) == nil)
    }
}
