//! Who filters IPv6 for Docker's bridges: Docker (its `ip6tables`; dock6 then runs as its
//! companion, doing sysctls and NDP proxying only) or dock6 (its own table).
//!
//! Docker's rules in the kernel are not enough to decide: Docker leaves them behind when its
//! `ip6tables` is turned off, and then nothing of Docker's filters the bridges it makes next.
//! So dock6 runs as the companion only when Docker itself says its IPv6 firewall is on *and*
//! its rules are in the kernel. Docker's `/info` has no `ip6tables` field: before Docker 27 its
//! ip6tables needs experimental features, so `ExperimentalBuild: false` means off; otherwise
//! daemon.json decides, and without the key Docker's default for its version holds (off before
//! 27, on from 27).

use crate::apply::DockerFirewall;
use crate::apply::nftables::DOCKER_BRIDGES_TABLE;
use crate::plan::Level;
use crate::source::daemon_json::DaemonJson;

/// The first Docker whose ip6tables is on by default (and no longer needs experimental).
pub const DOCKER_IP6TABLES_BY_DEFAULT: u32 = 27;

/// What Docker says of its own IPv6 firewall, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerIp6tables {
    On(String),
    Off(String),
    /// Docker has not answered yet, or what it said is not enough (daemon.json unreadable).
    Unknown(String),
}

impl DockerIp6tables {
    /// Before Docker has answered.
    pub fn not_yet() -> DockerIp6tables {
        DockerIp6tables::Unknown("Docker has not answered yet".into())
    }

    /// What it says, in words.
    pub fn why(&self) -> &str {
        match self {
            DockerIp6tables::On(why)
            | DockerIp6tables::Off(why)
            | DockerIp6tables::Unknown(why) => why,
        }
    }
}

/// Docker's word on its ip6tables, from `/info` (`version`, `experimental`:
/// `ServerVersion`, `ExperimentalBuild`) and its daemon.json. A dockerd flag
/// (`--ip6tables`) is not seen: daemon.json is where dock6 looks.
pub fn docker_ip6tables(
    version: Option<&str>,
    experimental: bool,
    daemon_json: &DaemonJson,
) -> DockerIp6tables {
    let major = version
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    let named = version.unwrap_or("(version not known)");
    let set = daemon_json.bool_setting("ip6tables");
    let path = daemon_json.path().display();
    if major.is_some_and(|m| m < DOCKER_IP6TABLES_BY_DEFAULT) && !experimental {
        return DockerIp6tables::Off(format!(
            "Docker {named} runs without experimental features, which its ip6tables needs before 27"
        ));
    }
    match (set, major) {
        (Ok(Some(true)), _) => DockerIp6tables::On(format!("{path} sets \"ip6tables\": true")),
        (Ok(Some(false)), _) => DockerIp6tables::Off(format!("{path} sets \"ip6tables\": false")),
        (Err(e), _) => DockerIp6tables::Unknown(format!("cannot read Docker's daemon.json: {e}")),
        (Ok(None), Some(m)) if m >= DOCKER_IP6TABLES_BY_DEFAULT => DockerIp6tables::On(format!(
            "Docker {named} turns ip6tables on by default and {path} does not turn it off"
        )),
        (Ok(None), Some(_)) => DockerIp6tables::Off(format!(
            "Docker {named} keeps ip6tables off by default and {path} does not turn it on"
        )),
        (Ok(None), None) => DockerIp6tables::Unknown(format!(
            "Docker {named}: no default dock6 knows, and {path} does not set \"ip6tables\""
        )),
    }
}

/// Who filters, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallRole {
    /// Docker says its ip6tables is on and its rules are in the kernel.
    Companion { signature: String, docker: String },
    /// dock6 owns IPv6 filtering (its table).
    Owner(OwnerBecause),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerBecause {
    /// Docker's ip6tables is off and none of its IPv6 rules are in the kernel.
    DockerOff {
        docker: String,
        /// A chain named `DOCKER` that nothing Docker hooks jumps to.
        lone_chain: Option<String>,
    },
    /// Docker says its ip6tables is off, yet rules of its shape are in the kernel: left behind.
    StaleRules { signature: String, docker: String },
    /// Docker says its ip6tables is on, but its rules are not in the kernel (yet).
    DockerRulesMissing { docker: String },
    /// Docker has not said (yet) whether its ip6tables is on.
    DockerUnknown {
        docker: String,
        signature: Option<String>,
    },
}

impl FirewallRole {
    pub fn is_companion(&self) -> bool {
        matches!(self, FirewallRole::Companion { .. })
    }
}

impl FirewallRole {
    /// What the agent logs when the role changes: loud (warn) when Docker filters, or when
    /// Docker's word and the kernel disagree.
    pub fn log_line(&self) -> (Level, String) {
        match self {
            FirewallRole::Companion { signature, docker } => (
                Level::Warn,
                format!(
                    "Docker's own IPv6 firewall is on ({docker}; its rules: {signature}): dock6 runs as \
                     its companion, leaving NAT66, published ports and filtering to Docker and doing \
                     sysctls and NDP proxying only; set \"ip6tables\": false in daemon.json to let dock6 \
                     own IPv6 firewalling (recommended)"
                ),
            ),
            FirewallRole::Owner(because) => because.log_line(),
        }
    }

    /// `dock6 status`'s mode and its reason.
    pub fn status(&self) -> (&'static str, String) {
        match self {
            FirewallRole::Companion { signature, docker } => (
                "companion",
                format!(
                    "Docker's own IPv6 firewall is on ({docker}; {signature}): NAT66, published \
                     ports and filtering are Docker's; dock6 does sysctls and NDP proxying"
                ),
            ),
            FirewallRole::Owner(OwnerBecause::DockerOff { .. }) => {
                ("owner", "Docker's ip6tables is off".into())
            }
            FirewallRole::Owner(OwnerBecause::StaleRules { signature, .. }) => (
                "owner",
                format!(
                    "Docker's ip6tables is off; rules it left behind are in the kernel ({signature}): {}",
                    removal_hint(signature)
                ),
            ),
            FirewallRole::Owner(OwnerBecause::DockerRulesMissing { .. }) => (
                "owner",
                "Docker says its ip6tables is on, but its rules are not in the kernel".into(),
            ),
            FirewallRole::Owner(OwnerBecause::DockerUnknown { docker, .. }) => (
                "owner",
                format!("until Docker says whether its ip6tables is on ({docker})"),
            ),
        }
    }
}

impl OwnerBecause {
    fn log_line(&self) -> (Level, String) {
        const OWNS: &str = "dock6 owns IPv6 firewalling for Docker bridges (table inet dock6)";
        match self {
            OwnerBecause::DockerOff {
                docker,
                lone_chain: None,
            } => (
                Level::Info,
                format!("{OWNS}; Docker's ip6tables is off ({docker})"),
            ),
            OwnerBecause::DockerOff {
                docker,
                lone_chain: Some(chain),
            } => (
                Level::Warn,
                format!(
                    "{OWNS}; Docker's ip6tables is off ({docker}); chain {chain} exists but nothing \
                     Docker hooks jumps to it (a leftover or someone's own chain)"
                ),
            ),
            OwnerBecause::StaleRules { signature, docker } => (
                Level::Warn,
                format!(
                    "rules of Docker's IPv6 firewall are in the kernel ({signature}) but Docker's \
                     ip6tables is off ({docker}): left behind, they filter nothing Docker makes now; \
                     {OWNS}. {}",
                    removal_hint(signature)
                ),
            ),
            OwnerBecause::DockerRulesMissing { docker } => (
                Level::Warn,
                format!(
                    "Docker says its ip6tables is on ({docker}) but none of its IPv6 rules are in \
                     the kernel: {OWNS} until they are, then runs as Docker's companion (a dockerd \
                     started with --ip6tables=false: set it in daemon.json instead, where dock6 reads it)"
                ),
            ),
            OwnerBecause::DockerUnknown {
                docker,
                signature: None,
            } => (
                Level::Info,
                format!("{OWNS} until Docker says whether its ip6tables is on ({docker})"),
            ),
            OwnerBecause::DockerUnknown {
                docker,
                signature: Some(signature),
            } => (
                Level::Info,
                format!(
                    "rules of Docker's IPv6 firewall are in the kernel ({signature}), but whether \
                     Docker's ip6tables is on is not known ({docker}): {OWNS} until Docker says it is on"
                ),
            ),
        }
    }
}

/// How to remove Docker's IPv6 rules left behind, by where they are.
pub fn removal_hint(signature: &str) -> String {
    if signature.contains(DOCKER_BRIDGES_TABLE) {
        return format!("remove them with `nft delete table ip6 {DOCKER_BRIDGES_TABLE}`");
    }
    "remove them with `ip6tables -t nat -F && ip6tables -t nat -X && ip6tables -t filter -F && \
     ip6tables -t filter -X && ip6tables -t raw -F` (this removes any ip6tables rule of your own \
     too: review `ip6tables-save` first), or restart the host if nothing restores them at boot"
        .into()
}

/// The role for what Docker says and what is in the kernel.
pub fn decide(docker: &DockerIp6tables, kernel: &DockerFirewall) -> FirewallRole {
    let why = docker.why().to_string();
    let signature = match kernel {
        DockerFirewall::On(signature) => Some(signature.clone()),
        _ => None,
    };
    match (docker, signature) {
        (DockerIp6tables::On(_), Some(signature)) => FirewallRole::Companion {
            signature,
            docker: why,
        },
        (DockerIp6tables::On(_), None) => {
            FirewallRole::Owner(OwnerBecause::DockerRulesMissing { docker: why })
        }
        (DockerIp6tables::Off(_), Some(signature)) => {
            FirewallRole::Owner(OwnerBecause::StaleRules {
                signature,
                docker: why,
            })
        }
        (DockerIp6tables::Unknown(_), signature) => {
            FirewallRole::Owner(OwnerBecause::DockerUnknown {
                docker: why,
                signature,
            })
        }
        (DockerIp6tables::Off(_), None) => FirewallRole::Owner(OwnerBecause::DockerOff {
            docker: why,
            lone_chain: match kernel {
                DockerFirewall::LoneChain(chain) => Some(chain.clone()),
                _ => None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(text: &str) -> DaemonJson {
        DaemonJson::Parsed(
            "/etc/docker/daemon.json".into(),
            serde_json::from_str(text).expect("JSON"),
        )
    }

    fn missing() -> DaemonJson {
        DaemonJson::Missing("/etc/docker/daemon.json".into())
    }

    fn on(why: &DockerIp6tables) -> Option<bool> {
        match why {
            DockerIp6tables::On(_) => Some(true),
            DockerIp6tables::Off(_) => Some(false),
            DockerIp6tables::Unknown(_) => None,
        }
    }

    #[test]
    fn docker_says_per_version_experimental_and_daemon_json() {
        let says = |v, exp, d: &DaemonJson| on(&docker_ip6tables(Some(v), exp, d));
        // Before 27 ip6tables needs experimental: without it Docker's ip6tables is off,
        // whatever daemon.json says.
        assert_eq!(
            says("20.10.24+dfsg1", false, &daemon(r#"{"ip6tables": true}"#)),
            Some(false)
        );
        assert_eq!(says("26.1.5", false, &missing()), Some(false));
        // With experimental, daemon.json decides; off by default.
        assert_eq!(
            says("20.10.24", true, &daemon(r#"{"ip6tables": true}"#)),
            Some(true)
        );
        assert_eq!(
            says("20.10.24", true, &daemon(r#"{"ip6tables": false}"#)),
            Some(false)
        );
        assert_eq!(
            says("20.10.24", true, &daemon(r#"{"ipv6": true}"#)),
            Some(false)
        );
        assert_eq!(says("20.10.24", true, &missing()), Some(false));
        // From 27 on by default, off only when daemon.json says so.
        assert_eq!(says("28.5.2+dfsg4", false, &missing()), Some(true));
        assert_eq!(
            says("27.0.1", false, &daemon(r#"{"ipv6": true}"#)),
            Some(true)
        );
        assert_eq!(
            says("28.5.2", false, &daemon(r#"{"ip6tables": false}"#)),
            Some(false)
        );
        // What cannot be read is not known.
        let unreadable = DaemonJson::Unreadable("/etc/docker/daemon.json".into(), "EACCES".into());
        assert_eq!(says("28.5.2", false, &unreadable), None);
        assert_eq!(says("20.10.24", true, &unreadable), None);
        assert_eq!(
            says("28.5.2", false, &daemon(r#"{"ip6tables": "no"}"#)),
            None
        );
        // Without experimental an old Docker cannot have it on: daemon.json is not needed.
        assert_eq!(says("20.10.24", false, &unreadable), Some(false));
        assert_eq!(says("not-a-version", false, &missing()), None);
        assert_eq!(
            says("not-a-version", false, &daemon(r#"{"ip6tables": false}"#)),
            Some(false)
        );
        // Docker not answering: daemon.json alone.
        let unanswered = |d: &DaemonJson| on(&docker_ip6tables(None, false, d));
        assert_eq!(unanswered(&daemon(r#"{"ip6tables": true}"#)), Some(true));
        assert_eq!(unanswered(&missing()), None);
    }

    #[test]
    fn companion_only_when_docker_says_on_and_its_rules_are_in() {
        let sig = || DockerFirewall::On("ip6 nat PREROUTING jumps to chain DOCKER".into());
        let on = DockerIp6tables::On("daemon.json sets \"ip6tables\": true".into());
        let off = DockerIp6tables::Off("daemon.json sets \"ip6tables\": false".into());
        let unknown = DockerIp6tables::not_yet();

        assert!(decide(&on, &sig()).is_companion());
        // Rules left behind after "ip6tables": false: dock6 keeps its table.
        assert_eq!(
            decide(&off, &sig()),
            FirewallRole::Owner(OwnerBecause::StaleRules {
                signature: "ip6 nat PREROUTING jumps to chain DOCKER".into(),
                docker: off.why().into(),
            })
        );
        // Docker on, its rules not in yet: nothing of Docker's filters; dock6 does until they are.
        assert_eq!(
            decide(&on, &DockerFirewall::Off),
            FirewallRole::Owner(OwnerBecause::DockerRulesMissing {
                docker: on.why().into()
            })
        );
        assert!(!decide(&on, &DockerFirewall::LoneChain("ip6 nat DOCKER".into())).is_companion());
        // Docker has not said: the rules alone do not make dock6 step aside.
        assert_eq!(
            decide(&unknown, &sig()),
            FirewallRole::Owner(OwnerBecause::DockerUnknown {
                docker: unknown.why().into(),
                signature: Some("ip6 nat PREROUTING jumps to chain DOCKER".into()),
            })
        );
        assert_eq!(
            decide(&off, &DockerFirewall::LoneChain("ip6 nat DOCKER".into())),
            FirewallRole::Owner(OwnerBecause::DockerOff {
                docker: off.why().into(),
                lone_chain: Some("ip6 nat DOCKER".into()),
            })
        );
        assert!(!decide(&off, &DockerFirewall::Off).is_companion());
    }

    #[test]
    fn rules_left_behind_are_named_with_how_to_remove_them() {
        let off = DockerIp6tables::Off("/etc/docker/daemon.json sets \"ip6tables\": false".into());
        let iptables = DockerFirewall::On("ip6 nat PREROUTING jumps to chain DOCKER".into());
        let role = decide(&off, &iptables);
        let (level, line) = role.log_line();
        assert_eq!(level, Level::Warn);
        for part in [
            "ip6 nat PREROUTING jumps to chain DOCKER",
            "left behind",
            "table inet dock6",
            "ip6tables -t nat -F",
        ] {
            assert!(line.contains(part), "{part:?} not in {line}");
        }
        assert_eq!(role.status().0, "owner");
        let nftables = DockerFirewall::On(format!("table ip6 {DOCKER_BRIDGES_TABLE}"));
        let (_, line) = decide(&off, &nftables).log_line();
        assert!(
            line.contains("nft delete table ip6 docker-bridges"),
            "{line}"
        );
        let on = DockerIp6tables::On("Docker 28.5.2 turns ip6tables on by default".into());
        let companion = decide(&on, &iptables);
        assert!(companion.log_line().1.contains("runs as its companion"));
        assert_eq!(companion.status().0, "companion");
    }
}
