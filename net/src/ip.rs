//! IP configuration: IPv4 by DHCP or static (from the kernel command line),
//! and the IPv6 link-local address every interface gets from its MAC.

use core::fmt;

pub use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};

/// How the interface gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpConfig {
    /// DHCPv4 (the default when the command line says nothing).
    #[default]
    Dhcp,
    Static {
        address: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
    },
}

/// Why an `ip=` value did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpConfigError {
    /// The address part is not `a.b.c.d/len`.
    BadAddress,
    /// The prefix length is missing or above 32.
    BadPrefixLength,
    /// The `gw=` value is not an IPv4 address, or outside the address's subnet.
    BadGateway,
    /// An option other than `gw=`.
    UnknownOption,
    /// `ip=` appears twice.
    Repeated,
}

impl fmt::Display for IpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadAddress => "ip=: expected dhcp or a.b.c.d/len[,gw=a.b.c.d]",
            Self::BadPrefixLength => "ip=: prefix length must be 0..=32",
            Self::BadGateway => "ip=: gw= must be an IPv4 address inside the subnet",
            Self::UnknownOption => "ip=: unknown option (only gw= is known)",
            Self::Repeated => "ip= given twice",
        })
    }
}

impl core::error::Error for IpConfigError {}

impl IpConfig {
    /// Finds `ip=...` among the whitespace-separated words of a kernel command
    /// line: `ip=dhcp` or `ip=10.0.2.15/24[,gw=10.0.2.2]`. No `ip=`: DHCP.
    pub fn from_cmdline(cmdline: &str) -> Result<IpConfig, IpConfigError> {
        let mut values = cmdline.split_ascii_whitespace().filter_map(|word| word.strip_prefix("ip="));
        let Some(value) = values.next() else { return Ok(IpConfig::Dhcp) };
        if values.next().is_some() {
            return Err(IpConfigError::Repeated);
        }
        Self::parse_value(value)
    }

    /// Parses the value of `ip=` alone.
    pub fn parse_value(value: &str) -> Result<IpConfig, IpConfigError> {
        if value.eq_ignore_ascii_case("dhcp") {
            return Ok(IpConfig::Dhcp);
        }
        let mut parts = value.split(',');
        let cidr = parts.next().unwrap_or_default();
        let (address, prefix) = cidr.split_once('/').ok_or(IpConfigError::BadPrefixLength)?;
        let address: Ipv4Address = address.parse().map_err(|_| IpConfigError::BadAddress)?;
        let prefix_len: u8 = prefix.parse().map_err(|_| IpConfigError::BadPrefixLength)?;
        if prefix_len > 32 {
            return Err(IpConfigError::BadPrefixLength);
        }
        let address = Ipv4Cidr::new(address, prefix_len);
        let mut gateway = None;
        for option in parts {
            let gw = option.strip_prefix("gw=").ok_or(IpConfigError::UnknownOption)?;
            let gw: Ipv4Address = gw.parse().map_err(|_| IpConfigError::BadGateway)?;
            if !address.contains_addr(&gw) || gw == address.address() {
                return Err(IpConfigError::BadGateway);
            }
            gateway = Some(gw);
        }
        Ok(IpConfig::Static { address, gateway })
    }
}

/// The IPv6 link-local address (fe80::/64) with the modified EUI-64
/// interface identifier of `mac` (RFC 4291 appendix A): stable across boots,
/// needs no configuration, so the interface always has an IPv6 address.
pub fn ipv6_link_local(mac: [u8; 6]) -> Ipv6Cidr {
    let id = [mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    let mut octets = [0u8; 16];
    octets[0] = 0xfe;
    octets[1] = 0x80;
    octets[8..].copy_from_slice(&id);
    Ipv6Cidr::new(Ipv6Address::from(octets), 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Address {
        Ipv4Address::new(a, b, c, d)
    }

    #[test]
    fn default_is_dhcp() {
        assert_eq!(IpConfig::from_cmdline(""), Ok(IpConfig::Dhcp));
        assert_eq!(IpConfig::from_cmdline("console=ttyS0 quiet"), Ok(IpConfig::Dhcp));
        assert_eq!(IpConfig::from_cmdline("quiet ip=dhcp"), Ok(IpConfig::Dhcp));
        assert_eq!(IpConfig::from_cmdline("ip=DHCP"), Ok(IpConfig::Dhcp));
    }

    #[test]
    fn static_with_and_without_gateway() {
        assert_eq!(
            IpConfig::from_cmdline("console=ttyS0 ip=10.0.2.15/24,gw=10.0.2.2 s3.port=443"),
            Ok(IpConfig::Static { address: Ipv4Cidr::new(v4(10, 0, 2, 15), 24), gateway: Some(v4(10, 0, 2, 2)) })
        );
        assert_eq!(
            IpConfig::from_cmdline("ip=192.168.1.7/16"),
            Ok(IpConfig::Static { address: Ipv4Cidr::new(v4(192, 168, 1, 7), 16), gateway: None })
        );
    }

    #[test]
    fn rejects_malformed_values() {
        let cases = [
            ("ip=10.0.2.15", IpConfigError::BadPrefixLength),
            ("ip=10.0.2.15/33", IpConfigError::BadPrefixLength),
            ("ip=10.0.2.15/x", IpConfigError::BadPrefixLength),
            ("ip=10.0.2/24", IpConfigError::BadAddress),
            ("ip=10.0.2.15/24,gw=10.0.3.1", IpConfigError::BadGateway),
            ("ip=10.0.2.15/24,gw=10.0.2.15", IpConfigError::BadGateway),
            ("ip=10.0.2.15/24,gw=nope", IpConfigError::BadGateway),
            ("ip=10.0.2.15/24,mtu=9000", IpConfigError::UnknownOption),
            ("ip=dhcp ip=dhcp", IpConfigError::Repeated),
            ("ip=", IpConfigError::BadPrefixLength),
        ];
        for (cmdline, error) in cases {
            assert_eq!(IpConfig::from_cmdline(cmdline), Err(error), "{cmdline}");
        }
    }

    #[test]
    fn link_local_from_mac() {
        let cidr = ipv6_link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(cidr.address(), "fe80::5054:ff:fe12:3456".parse::<Ipv6Address>().unwrap());
        assert_eq!(cidr.prefix_len(), 64);
    }
}
