//! Units written in scenario files: request rates, byte sizes and port ranges.
//!
//! Each parses from the text operators write (`30k/s`, `16Gi`, `"32768 60999"`) into an
//! exact integer, so a scenario means the same thing on every machine. Errors are
//! messages naming the offending text; the loader attaches file, line and field.

use crate::time::parse_scaled;
use std::fmt;

/// A request rate in exact integer milli-requests per second (`30k/s` = 30,000,000).
///
/// Parsed from a decimal number, an optional `k` (10³) or `M` (10⁶) multiplier and a
/// unit `/s` or `/min`: `500/s`, `1.5k/s`, `30k/s`, `1.5M/s`, `600/min`. A `/min` rate
/// that is not a whole number of milli-requests per second is rounded to the nearest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// No requests at all.
    pub const ZERO: Rate = Rate(0);

    /// A rate of `millis` milli-requests per second.
    #[must_use]
    pub const fn from_milli_per_sec(millis: u64) -> Rate {
        Rate(millis)
    }

    /// A rate of `n` requests per second.
    #[must_use]
    pub const fn per_sec(n: u64) -> Rate {
        Rate(n.saturating_mul(1_000))
    }

    /// The rate in milli-requests per second.
    #[must_use]
    pub const fn as_milli_per_sec(self) -> u64 {
        self.0
    }

    /// The rate in requests per second, for reports only (never for decisions).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_per_sec_f64(self) -> f64 {
        self.0 as f64 / 1_000.0
    }

    /// True for a rate of zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a rate as operators write it (`30k/s`, `500/s`, `1.5M/s`, `600/min`).
    ///
    /// # Errors
    /// A message naming the text and what was wrong: negative, no unit, unknown unit,
    /// not a number, too large.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(format!("negative rate `{text}`"));
        }
        let Some((amount, per)) = t.split_once('/') else {
            return Err(format!(
                "rate `{text}` has no unit (write requests per second or minute, e.g. `500/s`, `30k/s`, `600/min`)"
            ));
        };
        // Milli-requests per second contributed by one request per `per`:
        // `/s` = 1000, `/min` = 1000/60 (handled by dividing at the end).
        let divisor: u64 = match per.trim() {
            "s" | "sec" => 1,
            "min" | "m" => 60,
            other => {
                return Err(format!(
                    "rate `{text}` has unknown unit `/{other}` (use `/s` or `/min`)"
                ));
            }
        };
        let amount = amount.trim();
        let (num, mult): (&str, u64) = if let Some(n) = amount.strip_suffix('k') {
            (n, 1_000)
        } else if let Some(n) = amount.strip_suffix('M') {
            (n, 1_000_000)
        } else {
            (amount, 1)
        };
        if num.chars().any(|c| !(c.is_ascii_digit() || c == '.')) {
            return Err(format!(
                "rate `{text}` is not a number with an optional `k` or `M` multiplier"
            ));
        }
        let millis = parse_scaled(num.trim(), mult.saturating_mul(1_000))
            .ok_or_else(|| format!("rate `{text}` is not a valid number or is too large"))?;
        // Round to nearest for /min (in u128: `millis` may be close to u64::MAX).
        let rounded = (u128::from(millis) + u128::from(divisor / 2)) / u128::from(divisor);
        Ok(Rate(u64::try_from(rounded).unwrap_or(u64::MAX)))
    }
}

impl fmt::Display for Rate {
    /// `30k/s`, `500/s`, `0.5/s`: the shortest exact form in requests per second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        if m != 0 && m.is_multiple_of(1_000_000_000) {
            write!(f, "{}M/s", m / 1_000_000_000)
        } else if m != 0 && m.is_multiple_of(1_000_000) {
            write!(f, "{}k/s", m / 1_000_000)
        } else if m.is_multiple_of(1_000) {
            write!(f, "{}/s", m / 1_000)
        } else {
            let frac = format!("{:03}", m % 1_000);
            write!(f, "{}.{}/s", m / 1_000, frac.trim_end_matches('0'))
        }
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as `500/s`, `30k/s` or `600/min`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                Rate::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
                if v < 0 {
                    Err(E::custom(format!("negative rate `{v}`")))
                } else {
                    self.visit_u64(v.unsigned_abs())
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate `{v}` has no unit (write `{v}/s` or `{v}/min`)"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate `{v}` has no unit (write `{v}/s` or `{v}/min`)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes, parsed from Kubernetes quantity suffixes: `16Gi`, `512Mi`, `64Ki`,
/// `1Ti` (powers of 1024), `16G`, `500M`, `64k` (powers of 1000) or a plain integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of `n` bytes.
    #[must_use]
    pub const fn from_bytes(n: u64) -> ByteSize {
        ByteSize(n)
    }

    /// A size of `n` GiB.
    #[must_use]
    pub const fn from_gib(n: u64) -> ByteSize {
        ByteSize(n.saturating_mul(1 << 30))
    }

    /// The size in bytes.
    #[must_use]
    pub const fn as_bytes(self) -> u64 {
        self.0
    }

    /// Parses `16Gi`, `512Mi`, `16G`, `4096`.
    ///
    /// # Errors
    /// A message naming the text: negative, unknown suffix, not a number, too large.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(format!("negative size `{text}`"));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let scale: u64 = match unit.trim() {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            other => {
                return Err(format!(
                    "size `{text}` has unknown unit `{other}` (use Ki, Mi, Gi, Ti, k, M, G, T)"
                ));
            }
        };
        parse_decimal_times(num, scale)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is not a valid number or is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `16Gi`, `512Mi`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
            if n != 0 && n.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `16Gi`, `512Mi` or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("negative size `{v}`")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `num` (an unsigned decimal such as `1.5`) times `scale`, rounded down, exactly for
/// any `scale` (binary units are not powers of ten, so digits are not shifted).
fn parse_decimal_times(num: &str, scale: u64) -> Option<u64> {
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
        || frac_part.len() > 18
    {
        return None;
    }
    let int: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut total = u128::from(int).checked_mul(u128::from(scale))?;
    if !frac_part.is_empty() {
        let frac: u128 = frac_part.parse().ok()?;
        let denom = 10u128.pow(u32::try_from(frac_part.len()).ok()?);
        total = total.checked_add(frac * u128::from(scale) / denom)?;
    }
    u64::try_from(total).ok()
}

/// An inclusive port range as `ip_local_port_range` writes it: `"32768 60999"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port (inclusive).
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl PortRange {
    /// Parses two whitespace-separated ports, low first (`"32768 60999"`).
    ///
    /// # Errors
    /// A message naming the text: not two numbers, a port out of 1..=65535, low above high
    /// (`proc_do_large_bitmap`-style checks in `ipv4_local_port_range`).
    pub fn parse(text: &str) -> Result<PortRange, String> {
        let mut parts = text.split_whitespace();
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "port range `{text}` is not two ports separated by a space (e.g. \"32768 60999\")"
            ));
        };
        let port = |s: &str| -> Result<u16, String> {
            match s.parse::<u16>() {
                Ok(p) if p >= 1 => Ok(p),
                _ => Err(format!("port range `{text}`: `{s}` is not a port in 1..65535")),
            }
        };
        let (low, high) = (port(a)?, port(b)?);
        if low > high {
            return Err(format!("port range `{text}`: first port is above the last"));
        }
        Ok(PortRange { low, high })
    }

    /// The number of ports in the range.
    #[must_use]
    pub fn len(self) -> u32 {
        u32::from(self.high) - u32::from(self.low) + 1
    }

    /// Always false: a range holds at least one port.
    #[must_use]
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly_in_milli_requests() {
        assert_eq!(Rate::parse("30k/s"), Ok(Rate::per_sec(30_000)));
        assert_eq!(Rate::parse("500/s"), Ok(Rate::per_sec(500)));
        assert_eq!(Rate::parse("1.5k/s"), Ok(Rate::per_sec(1_500)));
        assert_eq!(Rate::parse("1.5M/s"), Ok(Rate::per_sec(1_500_000)));
        assert_eq!(Rate::parse("0.5/s"), Ok(Rate::from_milli_per_sec(500)));
        assert_eq!(Rate::parse("600/min"), Ok(Rate::per_sec(10)));
        assert_eq!(Rate::parse("1/min"), Ok(Rate::from_milli_per_sec(17)));
        assert_eq!(Rate::parse("850/s"), Ok(Rate::per_sec(850)));
    }

    #[test]
    fn rates_reject_bad_units_and_signs_with_the_text() {
        assert!(Rate::parse("30k/h").unwrap_err().contains("unknown unit `/h`"));
        assert!(Rate::parse("-5/s").unwrap_err().contains("negative rate `-5/s`"));
        assert!(Rate::parse("500").unwrap_err().contains("no unit"));
        assert!(Rate::parse("fast/s").unwrap_err().contains("not a number"));
        assert!(
            Rate::parse("1.2.3k/s")
                .unwrap_err()
                .contains("not a valid number")
        );
        assert!(
            Rate::parse("99999999999999999M/s")
                .unwrap_err()
                .contains("too large")
        );
        // The largest rates round without overflowing.
        assert_eq!(
            Rate::parse("18446744073709551.615/min"),
            Ok(Rate::from_milli_per_sec(u64::MAX / 60))
        );
        assert_eq!(
            Rate::parse("18446744073709551.615/s"),
            Ok(Rate::from_milli_per_sec(u64::MAX))
        );
    }

    #[test]
    fn rate_display_round_trips() {
        for r in ["30k/s", "500/s", "2M/s", "0.5/s", "1.25/s", "0/s"] {
            let parsed = Rate::parse(r).unwrap();
            assert_eq!(parsed.to_string(), r);
        }
    }

    #[test]
    fn byte_sizes_follow_kubernetes_suffixes() {
        assert_eq!(ByteSize::parse("16Gi"), Ok(ByteSize::from_gib(16)));
        assert_eq!(ByteSize::parse("512Mi"), Ok(ByteSize::from_bytes(512 << 20)));
        assert_eq!(ByteSize::parse("1.5Gi"), Ok(ByteSize::from_bytes(3 << 29)));
        assert_eq!(ByteSize::parse("2G"), Ok(ByteSize::from_bytes(2_000_000_000)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize::from_bytes(4_096)));
        assert!(
            ByteSize::parse("10 parsecs")
                .unwrap_err()
                .contains("unknown unit `parsecs`")
        );
        assert!(ByteSize::parse("-1Gi").unwrap_err().contains("negative"));
        assert_eq!(ByteSize::from_gib(16).to_string(), "16Gi");
    }

    #[test]
    fn port_ranges_parse_like_ip_local_port_range() {
        assert_eq!(
            PortRange::parse("32768 60999"),
            Ok(PortRange {
                low: 32_768,
                high: 60_999
            })
        );
        assert_eq!(PortRange::parse("32768\t60999").map(PortRange::len), Ok(28_232));
        assert!(PortRange::parse("60999 32768").unwrap_err().contains("above"));
        assert!(PortRange::parse("0 10").unwrap_err().contains("`0`"));
        assert!(PortRange::parse("1024").unwrap_err().contains("two ports"));
        assert!(PortRange::parse("1 2 3").unwrap_err().contains("two ports"));
    }
}
