//! Simulated time: integer nanoseconds, never wall-clock.
//!
//! The `time` module owns [`SimTime`] (an instant since the start of a run) and
//! [`SimDuration`] (a span). Both wrap `u64` nanoseconds so that the same scenario and
//! seed always give the same event order: there is no floating-point time anywhere in
//! the simulator. Durations parse from the units operators write (`150ms`, `120s`,
//! `5m`, `24h`).

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Nanoseconds per microsecond.
pub const NANOS_PER_MICRO: u64 = 1_000;
/// Nanoseconds per millisecond.
pub const NANOS_PER_MILLI: u64 = 1_000_000;
/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// An instant of simulated time, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

/// A span of simulated time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable instant (used as "never").
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// An instant `nanos` nanoseconds after the start.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        SimTime(nanos)
    }

    /// An instant `secs` seconds after the start.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        SimTime(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// An instant `ms` milliseconds after the start.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        SimTime(ms.saturating_mul(NANOS_PER_MILLI))
    }

    /// Nanoseconds since the start.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the start, for reports only (never for decisions).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`SimTime::MAX`].
    #[must_use]
    pub const fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);
    /// The largest representable span.
    pub const MAX: SimDuration = SimDuration(u64::MAX);

    /// A span of `nanos` nanoseconds.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        SimDuration(nanos)
    }
    /// A span of `us` microseconds.
    #[must_use]
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us.saturating_mul(NANOS_PER_MICRO))
    }
    /// A span of `ms` milliseconds.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms.saturating_mul(NANOS_PER_MILLI))
    }
    /// A span of `secs` seconds.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        SimDuration(secs.saturating_mul(NANOS_PER_SEC))
    }
    /// The span in nanoseconds.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The span in whole milliseconds (truncated).
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / NANOS_PER_MILLI
    }
    /// The span in whole seconds (truncated).
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }
    /// The span in seconds, for reports only.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
    /// `self * k`, saturating.
    #[must_use]
    pub const fn saturating_mul(self, k: u64) -> SimDuration {
        SimDuration(self.0.saturating_mul(k))
    }

    /// Parses a duration as operators write it: an unsigned decimal number followed by
    /// a unit `ns`, `us`, `ms`, `s`, `m` or `h` (`150ms`, `1.5s`, `120s`, `24h`).
    ///
    /// # Errors
    /// A message naming what was wrong (missing unit, unknown unit, not a number,
    /// negative, too large).
    pub fn parse(text: &str) -> Result<SimDuration, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(format!("duration `{text}` is negative"));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{text}` has no unit (use ns, us, ms, s, m or h)"))?;
        let (num, unit) = t.split_at(split);
        let scale: u64 = match unit.trim() {
            "ns" => 1,
            "us" | "µs" => NANOS_PER_MICRO,
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SEC,
            "m" | "min" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            other => {
                return Err(format!(
                    "duration `{text}` has unknown unit `{other}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let nanos =
            parse_scaled(num, scale).ok_or_else(|| format!("duration `{text}` is not a valid number"))?;
        Ok(SimDuration(nanos))
    }
}

/// Parses an unsigned decimal (`"1.5"`) times `scale` into an integer, exactly: the
/// fractional digits are handled in integers so `0.1s` is exactly 100 ms.
pub(crate) fn parse_scaled(num: &str, scale: u64) -> Option<u64> {
    if num.is_empty() {
        return None;
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.chars().all(|c| c.is_ascii_digit()) || !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut total = int.checked_mul(scale)?;
    let mut unit = scale;
    for d in frac_part.chars() {
        unit /= 10;
        if unit == 0 {
            break;
        }
        total = total.checked_add(u64::from(d.to_digit(10)?) * unit)?;
    }
    Some(total)
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, rhs: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }
}
impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, rhs: SimDuration) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}
impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, rhs: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(rhs.0))
    }
}
impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(rhs.0))
    }
}
impl AddAssign for SimDuration {
    fn add_assign(&mut self, rhs: SimDuration) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}
impl Sub for SimDuration {
    type Output = SimDuration;
    fn sub(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for SimTime {
    /// Seconds with millisecond precision: `4.370s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / NANOS_PER_SEC,
            (self.0 % NANOS_PER_SEC) / NANOS_PER_MILLI
        )
    }
}

impl fmt::Display for SimDuration {
    /// The largest unit that divides the span exactly: `120s`, `150ms`, `1500us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return write!(f, "0s");
        }
        for (scale, unit) in [
            (3_600 * NANOS_PER_SEC, "h"),
            (NANOS_PER_SEC, "s"),
            (NANOS_PER_MILLI, "ms"),
            (NANOS_PER_MICRO, "us"),
        ] {
            if n.is_multiple_of(scale) {
                return write!(f, "{}{unit}", n / scale);
            }
        }
        write!(f, "{n}ns")
    }
}

impl serde::Serialize for SimDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A duration as written: text with a unit (`120s`, `150ms`), or a bare whole number of
/// seconds (`30`, as the `*_timeout` sysctls take them).
impl<'de> serde::Deserialize<'de> for SimDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SimDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `120s` or `150ms`, or a whole number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SimDuration, E> {
                SimDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SimDuration, E> {
                v.checked_mul(NANOS_PER_SEC)
                    .map(SimDuration::from_nanos)
                    .ok_or_else(|| E::custom(format!("{v} seconds is too long")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SimDuration, E> {
                if v < 0 {
                    Err(E::custom(format!("negative duration `{v}`")))
                } else {
                    self.visit_u64(v.unsigned_abs())
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SimDuration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit: write it with one, such as `{v}s` or `{}ms`",
                    v * 1000.0
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_units_exactly() {
        assert_eq!(SimDuration::parse("150ms"), Ok(SimDuration::from_millis(150)));
        assert_eq!(SimDuration::parse("120s"), Ok(SimDuration::from_secs(120)));
        assert_eq!(SimDuration::parse("0.1s"), Ok(SimDuration::from_millis(100)));
        assert_eq!(SimDuration::parse("24h"), Ok(SimDuration::from_secs(86_400)));
        assert_eq!(SimDuration::parse("2m"), Ok(SimDuration::from_secs(120)));
        assert_eq!(SimDuration::parse("250us"), Ok(SimDuration::from_micros(250)));
    }

    #[test]
    fn rejects_bad_durations_with_reason() {
        assert!(SimDuration::parse("10").unwrap_err().contains("no unit"));
        assert!(
            SimDuration::parse("10 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(SimDuration::parse("-5s").unwrap_err().contains("negative"));
        assert!(
            SimDuration::parse("1.2.3s")
                .unwrap_err()
                .contains("not a valid number")
        );
    }

    #[test]
    fn display_round_trips() {
        for d in ["120s", "150ms", "1500us", "7ns", "2h"] {
            let parsed = SimDuration::parse(d).unwrap();
            assert_eq!(SimDuration::parse(&parsed.to_string()).unwrap(), parsed);
        }
        assert_eq!(SimTime::from_millis(4_370).to_string(), "4.370s");
    }
}
