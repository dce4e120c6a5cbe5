//! The `dock6.expose` container label.

use crate::nft::L4Proto;
use crate::text::quoted;

pub const EXPOSE_LABEL: &str = "dock6.expose";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expose {
    /// No label (or `true`): what is published, nothing more.
    Default,
    /// `false`: nothing inbound on IPv6, whatever is published.
    Sealed,
    /// `80/tcp,53/udp`: these container ports too (routed/ndp-proxy).
    Ports(Vec<(L4Proto, u16)>),
}

/// Parses a `dock6.expose` value. A port without protocol means tcp, as in a
/// Dockerfile's EXPOSE.
pub fn parse_expose(value: &str) -> Result<Expose, String> {
    match value.trim() {
        "false" => return Ok(Expose::Sealed),
        "true" => return Ok(Expose::Default),
        "" => return Err("empty value (use false, true or a list like 80/tcp,53/udp)".into()),
        _ => {}
    }
    let mut ports = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let (port, proto) = item.split_once('/').unwrap_or((item, "tcp"));
        let proto = match proto.trim() {
            "tcp" => L4Proto::Tcp,
            "udp" => L4Proto::Udp,
            other => {
                return Err(format!(
                    "{}: protocol {} is not tcp or udp",
                    quoted(item),
                    quoted(other)
                ));
            }
        };
        let port: u16 = match port.trim().parse() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(format!(
                    "{}: {} is not a port number (1-65535)",
                    quoted(item),
                    quoted(port)
                ));
            }
        };
        if !ports.contains(&(proto, port)) {
            ports.push((proto, port));
        }
    }
    ports.sort();
    Ok(Expose::Ports(ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_values() {
        assert_eq!(parse_expose("false"), Ok(Expose::Sealed));
        assert_eq!(parse_expose("true"), Ok(Expose::Default));
        assert_eq!(
            parse_expose("80/tcp, 53/udp,443"),
            Ok(Expose::Ports(vec![
                (L4Proto::Tcp, 80),
                (L4Proto::Tcp, 443),
                (L4Proto::Udp, 53)
            ]))
        );
        assert!(
            parse_expose("80/sctp")
                .unwrap_err()
                .contains("not tcp or udp")
        );
        assert!(
            parse_expose("0/tcp")
                .unwrap_err()
                .contains("not a port number")
        );
        assert!(
            parse_expose("http")
                .unwrap_err()
                .contains("not a port number")
        );
        assert!(parse_expose("70000/udp").is_err());
        assert!(parse_expose("").is_err());
        assert!(parse_expose("80/tcp,").is_err());
    }
}
