//! IPv4 CIDR blocks with the longest-prefix arithmetic routing and `-s`/`-d` need.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.244.0.0/16`. A bare address parses as a `/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a CIDR did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR `{text}`: {reason}")]
pub struct CidrParseError {
    /// The text that was given.
    pub text: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl Cidr {
    /// Every address (`0.0.0.0/0`).
    pub const ANY: Cidr = Cidr {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    /// A prefix; host bits of `addr` are cleared.
    ///
    /// # Errors
    /// When `len` is above 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Cidr, CidrParseError> {
        if len > 32 {
            return Err(CidrParseError {
                text: format!("{addr}/{len}"),
                reason: "prefix length above 32",
            });
        }
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    /// A single host (`/32`).
    #[must_use]
    pub fn host(addr: Ipv4Addr) -> Cidr {
        Cidr { addr, len: 32 }
    }

    /// The network address.
    #[must_use]
    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    #[must_use]
    pub fn len(self) -> u8 {
        self.len
    }

    /// True for `/0`.
    #[must_use]
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether the two prefixes share an address (one holds the other's network address).
    #[must_use]
    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Whether `ip` lies inside this prefix.
    #[must_use]
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & mask(self.len)) == u32::from(self.addr)
    }

    /// The `n`-th address of the block (`n = 0` is the network address), or `None`
    /// past the end.
    #[must_use]
    pub fn nth(self, n: u32) -> Option<Ipv4Addr> {
        let size = if self.len == 0 {
            u64::from(u32::MAX) + 1
        } else {
            1u64 << (32 - u32::from(self.len))
        };
        if u64::from(n) >= size {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.addr).wrapping_add(n)))
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl FromStr for Cidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Cidr, CidrParseError> {
        let err = |reason| CidrParseError {
            text: s.to_string(),
            reason,
        };
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| err("not an IPv4 address"))?;
        let len = match l {
            None => 32,
            Some(l) => l
                .parse::<u8>()
                .map_err(|_| err("prefix length is not a number"))?,
        };
        if len > 32 {
            return Err(err("prefix length above 32"));
        }
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_and_normalises() {
        let c: Cidr = "10.244.1.7/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!(c.contains(Ipv4Addr::new(10, 244, 200, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 245, 0, 1)));
        assert!(Cidr::ANY.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let h: Cidr = "172.30.0.41".parse().unwrap();
        assert_eq!(h.len(), 32);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
    }
}
