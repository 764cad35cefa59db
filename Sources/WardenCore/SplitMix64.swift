import Foundation

/// The seeded generator fuzz tests and simulations use (SplitMix64): the same seed gives the same inputs. Not for
/// anything secret.
package struct SplitMix64: RandomNumberGenerator {
    package var state: UInt64

    package init(state: UInt64) { self.state = state }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension RandomNumberGenerator {
    /// A standard normal draw (Box–Muller).
    package mutating func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return (-2 * Foundation.log(u)).squareRoot() * cos(2 * .pi * v)
    }

    /// A log-normal draw with the given median and shape (`sigma`, the standard deviation of its logarithm): think
    /// times and body sizes of real traffic, mostly near the median with a long tail.
    package mutating func logNormal(median: Double, sigma: Double) -> Double { median * exp(sigma * normal()) }
}
