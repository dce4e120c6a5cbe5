//! The table the kernel probe tries (`dock6 check`, and `dock6 run` before
//! it changes anything): what every table of dock6 holds, planned by the
//! planner for a NAT66 network with a published port (masquerade, DNAT maps,
//! concatenated sets and maps, fib, ct).

use crate::nft::Table;
use crate::snapshot::Snapshot;

pub fn probe_table() -> Table {
    let snapshot: Snapshot = serde_json::from_str(PROBE_SNAPSHOT).unwrap_or_default();
    super::plan(&super::Policy::default(), &snapshot).ruleset
}

const PROBE_SNAPSHOT: &str = r#"{
  "host": {"default_route_interface": "eth0", "interfaces": [{"name": "eth0",
    "addresses": ["2001:db8:1::10/64"], "onlink_prefixes": ["2001:db8:1::/64"]}]},
  "networks": [{"id": "probe", "name": "probe", "bridge": "br-probe", "enable_ipv6": true,
    "subnets": [{"subnet": "fd00:d6::/64", "gateway": "fd00:d6::1"}]}],
  "containers": [{"id": "c", "name": "c", "networks": {"probe": {"ipv6_address": "fd00:d6::2"}},
    "ports": {"80/tcp": [{"HostIp": "::", "HostPort": "8080"}]}}]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_table_holds_the_published_port_and_the_masquerade() {
        let text = probe_table().to_string();
        assert!(text.contains("tcp . 8080 : fd00:d6::2 . 80"), "{text}");
        assert!(text.contains("masquerade"), "{text}");
    }
}
