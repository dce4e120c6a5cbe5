//! Docker's own IPv6 firewall is recognised by its signature, not by a
//! chain name anyone can create (`dock6::apply::nftables::docker_ip6_firewall`),
//! against the kernel in fresh network namespaces. Needs root.

mod common;

use dock6::apply::DockerFirewall;
use dock6::apply::nftables::docker_ip6_firewall;

use common::{in_fresh_netns, nft, require_root};

fn seen(ruleset: &'static str) -> DockerFirewall {
    in_fresh_netns(move || {
        if !ruleset.is_empty() {
            nft(&["-f", "-"], Some(ruleset));
        }
        docker_ip6_firewall().expect("read the ruleset")
    })
}

#[test]
fn nothing_is_not_dockers_firewall() {
    if !require_root("nothing_is_not_dockers_firewall") {
        return;
    }
    assert_eq!(seen(""), DockerFirewall::Off);
}

#[test]
fn a_lone_docker_chain_is_not_dockers_firewall() {
    if !require_root("a_lone_docker_chain_is_not_dockers_firewall") {
        return;
    }
    // A leftover DOCKER chain, and a base chain jumping elsewhere.
    let lone = seen(
        "table ip6 nat {\n\tchain DOCKER {\n\t}\n\tchain OTHER {\n\t}\n\
         \tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tfib daddr type local jump OTHER\n\t}\n}\n",
    );
    assert_eq!(lone, DockerFirewall::LoneChain("ip6 nat DOCKER".into()));
    let lone = seen("table ip6 filter {\n\tchain DOCKER {\n\t}\n}\n");
    assert_eq!(lone, DockerFirewall::LoneChain("ip6 filter DOCKER".into()));
    // Jumping to DOCKER from a chain Docker does not hook is not its signature.
    let lone =
        seen("table ip6 nat {\n\tchain DOCKER {\n\t}\n\tchain MINE {\n\t\tjump DOCKER\n\t}\n}\n");
    assert_eq!(lone, DockerFirewall::LoneChain("ip6 nat DOCKER".into()));
}

#[test]
fn a_jump_from_prerouting_or_forward_is_dockers_firewall() {
    if !require_root("a_jump_from_prerouting_or_forward_is_dockers_firewall") {
        return;
    }
    // What iptables-nft makes of Docker's `-m addrtype --dst-type LOCAL -j DOCKER`
    // (a match expression, then the jump), here with nft's own fib match.
    let on = seen(
        "table ip6 nat {\n\tchain DOCKER {\n\t}\n\
         \tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tcounter\n\t\tfib daddr type local counter jump DOCKER\n\t}\n}\n",
    );
    assert_eq!(
        on,
        DockerFirewall::On("ip6 nat PREROUTING jumps to chain DOCKER".into())
    );
    let on = seen(
        "table ip6 filter {\n\tchain DOCKER {\n\t}\n\
         \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\
         \t\toifname \"docker0\" goto DOCKER\n\t}\n}\n",
    );
    assert_eq!(
        on,
        DockerFirewall::On("ip6 filter FORWARD jumps to chain DOCKER".into())
    );
}

#[test]
fn dockers_nftables_backend_is_dockers_firewall() {
    if !require_root("dockers_nftables_backend_is_dockers_firewall") {
        return;
    }
    let on = seen("table ip6 docker-bridges {\n}\n");
    assert_eq!(on, DockerFirewall::On("table ip6 docker-bridges".into()));
    // The same name in another family is not it.
    assert_eq!(seen("table ip docker-bridges {\n}\n"), DockerFirewall::Off);
}

/// Docker 29's nftables backend as moby documents a new daemon's table
/// (integration/network/bridge/nftablesdoc, "new-daemon"), written for IPv6 with the lab's
/// default bridge: Docker 29 has no Debian package, so this shape is what dock6 is held to.
/// (nft 1.0.6 takes `dstnat` only at prerouting: the output chain's -100 is the same value.)
const DOCKER29_IP6_TABLE: &str = r#"table ip6 docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-in__docker0 }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-out__docker0 }
	}
	map nat-postrouting-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-in__docker0 }
	}
	map nat-postrouting-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-out__docker0 }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip6 daddr != ::1 fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
	}
	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
	}
	chain filter-forward-in__docker0 {
		ct state established,related counter accept
		iifname "docker0" counter accept comment "ICC"
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__docker0 {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-postrouting-in__docker0 {
	}
	chain nat-postrouting-out__docker0 {
		oifname != "docker0" ip6 saddr fd00:d0c::/64 counter masquerade comment "MASQUERADE"
	}
}
"#;

#[test]
fn docker29s_documented_nftables_rules_are_dockers_firewall() {
    if !require_root("docker29s_documented_nftables_rules_are_dockers_firewall") {
        return;
    }
    assert_eq!(
        seen(DOCKER29_IP6_TABLE),
        DockerFirewall::On("table ip6 docker-bridges".into())
    );
    // Control: Docker 29 with `ip6tables: false` keeps only its IPv4 table.
    let ipv4_only: &'static str = Box::leak(
        DOCKER29_IP6_TABLE
            .replacen("table ip6", "table ip", 1)
            .replace("ip6 saddr fd00:d0c::/64", "ip saddr 203.0.113.0/26")
            .replace("ip6 daddr != ::1", "ip daddr != 127.0.0.0/8")
            .into_boxed_str(),
    );
    assert_eq!(seen(ipv4_only), DockerFirewall::Off);
}

/// The real thing, where iptables-nft is installed: Docker's own rules.
#[test]
fn iptables_nft_rules_as_docker_writes_them_are_recognised() {
    if !require_root("iptables_nft_rules_as_docker_writes_them_are_recognised") {
        return;
    }
    let Some(ip6tables) = ["ip6tables-nft", "ip6tables"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nf_tables"))
    }) else {
        eprintln!(
            "SKIPPED iptables_nft_rules_as_docker_writes_them_are_recognised: no ip6tables-nft"
        );
        return;
    };
    let on = in_fresh_netns(move || {
        let run = |args: &str| {
            let out = std::process::Command::new(ip6tables)
                .args(args.split_whitespace())
                .output()
                .expect("run ip6tables");
            assert!(
                out.status.success(),
                "{args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run("-t nat -N DOCKER");
        let lone = docker_ip6_firewall().expect("read");
        run("-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER");
        (lone, docker_ip6_firewall().expect("read"))
    });
    assert_eq!(on.0, DockerFirewall::LoneChain("ip6 nat DOCKER".into()));
    assert_eq!(
        on.1,
        DockerFirewall::On("ip6 nat PREROUTING jumps to chain DOCKER".into())
    );
}
