//! f32 values printed without core's float formatting (about 21 KB of flash on a Cortex-M4F):
//! nine significant digits, computed with integer arithmetic. Nine digits tell every f32 apart,
//! so two targets that print the same text hold the same bits.

use core::fmt;

/// An f32 written as a plain decimal with at most nine significant digits, correctly rounded
/// (half up), trailing zeros dropped: `12.4895506`, `0.0716331154`, `-3`, `NaN`, `inf`. The
/// digits are exact for magnitudes from about 1e-20 up (below, the lowest bits are dropped
/// before rounding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decimal(pub f32);

/// The value's nine significant digits `n` (10^8 <= n < 10^9) and decimal exponent `q`:
/// |v| ~ n * 10^q. `v` is finite and not zero.
fn digits(v: f32) -> (u32, i32) {
    let bits = v.abs().to_bits();
    let (biased, frac) = ((bits >> 23) as i32, u128::from(bits & 0x7f_ffff));
    // |v| = m * 2^e exactly.
    let (mut m, mut e) = if biased == 0 {
        (frac, -149)
    } else {
        (frac | 0x80_0000, biased - 150)
    };
    if e > 0 {
        m <<= e; // below 2^128: the largest f32 is below 2^128
        e = 0;
    }
    let shift = (-e) as u32;
    let mut q = 0;
    let mut shift = shift;
    // Scale by tens until the integer part has nine digits (only below 10^8).
    while shift >= 128 || (m >> shift) < 100_000_000 {
        if m < 1 << 120 {
            m *= 10;
            q -= 1;
        } else {
            // Magnitudes below about 1e-20: drop a low bit to stay within 128 bits.
            m >>= 1;
            shift -= 1;
        }
    }
    // Now |v| * 10^-q = m / 2^shift, whose integer part has at least nine digits: round away
    // the excess ones (there are only any when `shift` is 0).
    let mut excess = 0;
    while (m >> shift) / pow10(excess) >= 1_000_000_000 {
        excess += 1;
    }
    let den = pow10(excess) << shift;
    let mut n = (m + den / 2) / den;
    q += excess as i32;
    if n == 1_000_000_000 {
        n = 100_000_000;
        q += 1;
    }
    (n as u32, q)
}

const fn pow10(k: u32) -> u128 {
    let mut p = 1u128;
    let mut i = 0;
    while i < k {
        p *= 10;
        i += 1;
    }
    p
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_sign_negative() && v != 0.0 {
            f.write_str("-")?;
        }
        if v.is_infinite() {
            return f.write_str("inf");
        }
        if v == 0.0 {
            return f.write_str("0");
        }
        let (n, q) = digits(v);
        let mut d = [0u8; 9];
        let mut r = n;
        for slot in d.iter_mut().rev() {
            *slot = b'0' + (r % 10) as u8;
            r /= 10;
        }
        // Significant digits without the trailing zeros; the point goes after `point` of them.
        let used = 9 - d.iter().rev().take_while(|&&c| c == b'0').count();
        let point = 9 + q;
        let digit = |i: i32| -> char {
            if (0..used as i32).contains(&i) {
                d[i as usize] as char
            } else {
                '0'
            }
        };
        if point <= 0 {
            f.write_str("0.")?;
            for _ in point..0 {
                f.write_str("0")?;
            }
            for i in 0..used as i32 {
                fmt::Write::write_char(f, digit(i))?;
            }
        } else {
            for i in 0..point {
                fmt::Write::write_char(f, digit(i))?;
            }
            if (used as i32) > point {
                f.write_str(".")?;
                for i in point..used as i32 {
                    fmt::Write::write_char(f, digit(i))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::Decimal;
    use std::string::ToString;

    #[test]
    fn prints_plain_decimals() {
        for (v, s) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (0.5, "0.5"),
            (0.02, "0.0199999996"),
            (12.5, "12.5"),
            (1e9, "1000000000"),
            (123456789.0, "123456792"),
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(Decimal(v).to_string(), s, "{v:e}");
        }
    }

    /// Nine correctly rounded digits read back as the same f32: equal text, equal bits.
    #[test]
    fn every_printed_value_reads_back_exactly() {
        let mut x: u32 = 0x1234_5678;
        let mut checked = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = f32::from_bits(x);
            if !v.is_finite() || v.abs() < 1e-20 {
                continue;
            }
            let s = Decimal(v).to_string();
            assert_eq!(s.parse::<f32>().unwrap(), v, "{v:e} printed {s}");
            checked += 1;
        }
        for v in [
            f32::MAX,
            f32::MIN_POSITIVE * 1e20,
            1e-20,
            0.1,
            0.07163312,
            12.489551,
        ] {
            let s = Decimal(v).to_string();
            assert_eq!(s.parse::<f32>().unwrap(), v, "{v:e} printed {s}");
        }
        assert!(checked > 100_000);
    }
}
