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
