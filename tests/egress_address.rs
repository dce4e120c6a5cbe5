//! The container label `dock6.egress-address`, with traffic through a host
//! programmed by `dock6 apply --once`: two ULA containers on one nat66
//! network, the uplink with a second global address; the labelled
//! container's connections reach the upstream from that address, the other
//! one's from the host's default (masquerade), and a label naming an address
//! the uplink does not have is refused (the default applies).

mod common;

use common::lab::{HOST_UPLINK, INTERNET, Lab, sock};
use serde_json::json;

const MAIL: &str = "fd00:1::25";
const WEB: &str = "fd00:1::2";
const STRAY: &str = "fd00:1::3";
/// A second global address on the host's uplink, the mail server's own.
const MAIL_EGRESS: &str = "2001:db8:1::25";

#[test]
fn labelled_container_egresses_from_its_own_address() {
    if !common::require_root("labelled_container_egresses_from_its_own_address") {
        return;
    }
    let mut lab = Lab::new("egl");
    // Deprecated (preferred_lft 0), so that masquerade's source selection
    // keeps choosing the host's main address: only dock6 picks this one.
    lab.host.ip(&format!(
        "addr add {MAIL_EGRESS}/64 dev eth0 nodad preferred_lft 0"
    ));
    lab.bridge("br-apps", "fd00:1::1/64", None, None);
    for (name, addr) in [("mail", MAIL), ("web", WEB), ("stray", STRAY)] {
        lab.container(name, "br-apps", &format!("{addr}/64"), "fd00:1::1", None);
    }
    let mut host = lab.host_facts();
    host["interfaces"][0]["addresses"] =
        json!([format!("{HOST_UPLINK}/64"), format!("{MAIL_EGRESS}/64")]);
    let snapshot = json!({
        "host": host,
        "networks": [{"id": format!("{:0>64}", "1"), "name": "apps", "bridge": "br-apps",
                      "enable_ipv6": true, "subnets": [{"subnet": "fd00:1::/64"}]}],
        "containers": [
            {"id": "m", "name": "mail", "labels": {"dock6.egress-address": MAIL_EGRESS},
             "networks": {"apps": {"ipv6_address": MAIL}}},
            {"id": "w", "name": "web", "networks": {"apps": {"ipv6_address": WEB}}},
            {"id": "s", "name": "stray", "labels": {"dock6.egress-address": "2001:db8:1::99"},
             "networks": {"apps": {"ipv6_address": STRAY}}},
        ]
    });
    let _server = lab.upstream.tcp_echo_peer(7000);
    lab.apply(&snapshot, "");

    assert_eq!(
        lab.c("mail")
            .tcp(sock(INTERNET, 7000))
            .expect("the labelled container reaches the upstream"),
        MAIL_EGRESS,
        "seen at its own egress address"
    );
    assert_eq!(
        lab.c("web")
            .tcp(sock(INTERNET, 7000))
            .expect("control: an unlabelled container reaches the upstream"),
        HOST_UPLINK,
        "seen at the host's address"
    );
    assert_eq!(
        lab.c("stray")
            .tcp(sock(INTERNET, 7000))
            .expect("a refused label keeps the default egress"),
        HOST_UPLINK,
        "an address the uplink does not have is never used"
    );
    let map = lab
        .host
        .exec_ok(&["nft", "list", "map", "inet", "dock6", "egress_addresses"]);
    assert!(
        map.contains(&format!("{MAIL} : {MAIL_EGRESS}")) && !map.contains(STRAY),
        "one element for the labelled container, none for the refused one: {map}"
    );
}
