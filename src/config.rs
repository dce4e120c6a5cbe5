//! dock6's optional configuration file (`/etc/dock6/dock6.toml`).
//!
//! Every problem is reported with the file, the line and the key, before
//! anything is programmed.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::plan::{Mode, NaSource, Policy, PrefixSource};

pub const DEFAULT_PATH: &str = "/etc/dock6/dock6.toml";
pub use crate::plan::DEFAULT_ACCEPT_MARK;
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);
/// How long host facts that vanished (default route, uplink) are replaced by
/// the last good ones before dock6 plans without them.
pub const DEFAULT_HOST_FACTS_GRACE: Duration = Duration::from_secs(30);

/// The planner's policy, and the reconcile loop's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub policy: Policy,
    pub resync_interval: Duration,
    pub host_facts_grace: Duration,
    /// Where the agent serves `dock6 status` (mode 0600).
    pub status_socket: PathBuf,
    /// Where the agent serves Prometheus metrics (`http://ADDR/metrics`);
    /// off when `None`. Loopback only unless `metrics_allow_remote`.
    pub metrics_address: Option<SocketAddr>,
    pub metrics_allow_remote: bool,
    /// Docker's daemon.json: whether Docker's own IPv6 firewall is on, where `/info` cannot tell.
    pub docker_daemon_json: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::default(),
            resync_interval: DEFAULT_RESYNC,
            host_facts_grace: DEFAULT_HOST_FACTS_GRACE,
            status_socket: PathBuf::from(crate::status::DEFAULT_SOCKET),
            metrics_address: None,
            metrics_allow_remote: false,
            docker_daemon_json: PathBuf::from(crate::source::daemon_json::DEFAULT_DAEMON_JSON),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        file: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of dock6 settings")]
struct RawConfig {
    uplink: Option<Spanned<String>>,
    egress_address: Option<Spanned<String>>,
    resync_interval: Option<Spanned<String>>,
    host_facts_grace: Option<Spanned<String>>,
    accept_mark: Option<Spanned<i64>>,
    na_source: Option<Spanned<String>>,
    status_socket: Option<Spanned<String>>,
    metrics_address: Option<Spanned<String>>,
    metrics_allow_remote: Option<Spanned<bool>>,
    docker_daemon_json: Option<Spanned<String>>,
    #[serde(default)]
    networks: BTreeMap<String, RawNetwork>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [networks.NAME] table, like `mode = \"routed\"`"
)]
struct RawNetwork {
    mode: Spanned<Mode>,
    /// Mode `nptv6`: the global prefix the network's subnet is mapped onto.
    prefix: Option<Spanned<String>>,
}

impl Config {
    /// Reads `path`; a missing default file means the defaults, any other
    /// missing file is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&file) {
            Ok(text) => Config::parse(&text, &file),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read { file, source }),
        }
    }

    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<Range<usize>>, key: Option<String>, message: String| {
            let offset = span.map(|s| s.start).unwrap_or(0);
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line: line_of(text, offset),
                key: key.or_else(|| key_at(text, offset)),
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), None, e.message().to_string()))?;

        let mut config = Config::default();
        if let Some(uplink) = raw.uplink {
            check_ifname(uplink.get_ref())
                .map_err(|m| invalid(Some(uplink.span()), Some("uplink".into()), m))?;
            config.policy.uplink = Some(uplink.into_inner());
        }
        if let Some(egress) = raw.egress_address {
            let addr = parse_egress(egress.get_ref())
                .map_err(|m| invalid(Some(egress.span()), Some("egress_address".into()), m))?;
            config.policy.egress_address = Some(addr);
        }
        if let Some(resync) = raw.resync_interval {
            config.resync_interval = parse_interval(resync.get_ref())
                .map_err(|m| invalid(Some(resync.span()), Some("resync_interval".into()), m))?;
        }
        if let Some(grace) = raw.host_facts_grace {
            config.host_facts_grace = parse_grace(grace.get_ref())
                .map_err(|m| invalid(Some(grace.span()), Some("host_facts_grace".into()), m))?;
        }
        if let Some(mark) = raw.accept_mark {
            config.policy.accept_mark = parse_mark(*mark.get_ref())
                .map_err(|m| invalid(Some(mark.span()), Some("accept_mark".into()), m))?;
        }
        if let Some(source) = raw.na_source {
            config.policy.na_source = NaSource::parse(source.get_ref()).ok_or_else(|| {
                invalid(
                    Some(source.span()),
                    Some("na_source".into()),
                    format!("{:?} is not \"link-local\" or \"target\"", source.get_ref()),
                )
            })?;
        }
        if let Some(socket) = raw.status_socket {
            config.status_socket = parse_socket_path(socket.get_ref())
                .map_err(|m| invalid(Some(socket.span()), Some("status_socket".into()), m))?;
        }
        if let Some(allow) = raw.metrics_allow_remote {
            config.metrics_allow_remote = allow.into_inner();
        }
        if let Some(address) = raw.metrics_address {
            let parsed = parse_metrics_address(address.get_ref(), config.metrics_allow_remote)
                .map_err(|m| invalid(Some(address.span()), Some("metrics_address".into()), m))?;
            config.metrics_address = Some(parsed);
        }
        if let Some(path) = raw.docker_daemon_json {
            config.docker_daemon_json = parse_file_path(path.get_ref())
                .map_err(|m| invalid(Some(path.span()), Some("docker_daemon_json".into()), m))?;
        }
        for (name, net) in raw.networks {
            if let Some(prefix) = net.prefix {
                let key = Some(format!("networks.{name}.prefix"));
                let mode = *net.mode.get_ref();
                let parsed = parse_prefix(prefix.get_ref(), mode)
                    .map_err(|m| invalid(Some(prefix.span()), key, m))?;
                config.policy.network_prefixes.insert(name.clone(), parsed);
            }
            config
                .policy
                .network_modes
                .insert(name, net.mode.into_inner());
        }
        Ok(config)
    }
}

/// Every key the file accepts, as the parser reads them: `uplink`, …, and
/// `networks.NAME.mode` for the keys of a `[networks.NAME]` table. Taken from
/// the parser's own field lists, so a key added to the file's structure is
/// listed here with nothing else to keep in step (docs/configuration.md is
/// checked against it).
pub fn file_keys() -> Vec<String> {
    let network_keys = field_names::<RawNetwork>();
    field_names::<RawConfig>()
        .iter()
        .flat_map(|key| match *key {
            "networks" => network_keys
                .iter()
                .map(|k| format!("networks.NAME.{k}"))
                .collect(),
            key => vec![key.to_string()],
        })
        .collect()
}

/// The field names a derived `Deserialize` of a struct passes to
/// `deserialize_struct`: asked of a deserializer that answers nothing but
/// records them.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(FieldsAsked(fields)) => fields,
        Ok(_) => &[],
    }
}

struct FieldNames;

/// Ends every deserialization, carrying the fields of the struct asked for.
#[derive(Debug)]
struct FieldsAsked(&'static [&'static str]);

impl std::fmt::Display for FieldsAsked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for FieldsAsked {}

impl serde::de::Error for FieldsAsked {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        FieldsAsked(&[])
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames {
    type Error = FieldsAsked;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, FieldsAsked> {
        Err(FieldsAsked(&[]))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, FieldsAsked> {
        Err(FieldsAsked(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn check_ifname(name: &str) -> Result<(), String> {
    let bad_char = name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || bad_char {
        return Err(format!(
            "{name:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
        ));
    }
    Ok(())
}

fn parse_egress(text: &str) -> Result<Ipv6Addr, String> {
    let addr: Ipv6Addr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv6 address"))?;
    if addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_unicast_link_local()
    {
        return Err(format!(
            "{addr} cannot be a source address for NAT66 (unspecified, loopback, multicast or link-local)"
        ));
    }
    Ok(addr)
}

/// An `nptv6` network's mapped prefix (only that mode has one): fixed, or
/// following the host's (`uplink`, `delegated`).
fn parse_prefix(text: &str, mode: Mode) -> Result<PrefixSource, String> {
    if mode != Mode::Nptv6 {
        return Err(format!(
            "only mode nptv6 maps onto a prefix (this network's mode is {})",
            mode.name()
        ));
    }
    PrefixSource::parse(text)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"5m\": {e}"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
        return Err(format!("{text:?} is out of range (1s to 24h)"));
    }
    Ok(d)
}

/// "0s" is allowed: plan without vanished facts at once.
fn parse_grace(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"2m\": {e}"))?;
    if d > Duration::from_secs(3600) {
        return Err(format!("{text:?} is out of range (0s to 1h)"));
    }
    Ok(d)
}

fn parse_mark(value: i64) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(bit) if bit.is_power_of_two() => Ok(bit),
        _ => Err(format!(
            "{value:#x} is not a single mark bit (a power of two below 2^32, e.g. 0x04000000)"
        )),
    }
}

fn parse_socket_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(format!("{text:?} is not an absolute path to a socket file"));
    }
    Ok(path)
}

fn parse_file_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(format!("{text:?} is not an absolute path to a file"));
    }
    Ok(path)
}

/// `ADDR:PORT`; an address other than loopback needs `allow_remote`: the
/// metrics name containers and addresses, and the endpoint has no auth.
pub fn parse_metrics_address(text: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let address: SocketAddr = text.parse().map_err(|_| {
        format!("{text:?} is not ADDRESS:PORT like \"127.0.0.1:9586\" or \"[::1]:9586\"")
    })?;
    if !address.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "{address} is not a loopback address: metrics are served without authentication; \
             set metrics_allow_remote = true to serve them there"
        ));
    }
    Ok(address)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key written on the line holding `offset`, qualified by the
/// table header above it: `networks.web.mode`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[offset..]
        .find('\n')
        .map(|i| offset + i)
        .unwrap_or(text.len());
    let line = text[line_start..line_end].trim();
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/dock6/dock6.toml"))
    }

    fn error(text: &str) -> String {
        parse(text)
            .expect_err("config should be refused")
            .to_string()
    }

    #[test]
    fn file_keys_are_the_keys_the_parser_accepts() {
        let keys = file_keys();
        assert!(keys.contains(&"resync_interval".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"networks.NAME.prefix".to_string()),
            "{keys:?}"
        );
        assert!(!keys.contains(&"networks".to_string()), "{keys:?}");
        // Each is accepted by the parser, and a key not listed is refused.
        for key in keys.iter().filter(|k| !k.starts_with("networks.")) {
            let refused = error(&format!("{key} = []"));
            assert!(!refused.contains("unknown field"), "{key}: {refused}");
        }
        assert!(error("no_such_key = 1").contains("unknown field"));
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "uplink = \"eth0.100\"\negress_address = \"2001:db8::10\"\nresync_interval = \"30s\"\naccept_mark = 0x100\n[networks.web]\nmode = \"ndp-proxy\"\n",
        )
        .unwrap();
        assert_eq!(c.policy.uplink.as_deref(), Some("eth0.100"));
        assert_eq!(
            c.policy.egress_address,
            Some("2001:db8::10".parse().unwrap())
        );
        assert_eq!(c.resync_interval, Duration::from_secs(30));
        assert_eq!(c.policy.accept_mark, 0x100);
        assert_eq!(c.policy.network_modes.get("web"), Some(&Mode::NdpProxy));
    }

    #[test]
    fn host_facts_grace_defaults_to_30s_and_may_be_zero() {
        assert_eq!(parse("").unwrap().host_facts_grace, Duration::from_secs(30));
        let c = parse("host_facts_grace = \"0s\"").unwrap();
        assert_eq!(c.host_facts_grace, Duration::ZERO);
        let c = parse("host_facts_grace = \"2m\"").unwrap();
        assert_eq!(c.host_facts_grace, Duration::from_secs(120));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = error("uplink = \"eth0\"\n\nresync = \"5m\"\n");
        assert!(
            e.starts_with("/etc/dock6/dock6.toml:3: key `resync`: unknown field `resync`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = error("uplink = 5\n");
        assert!(
            e.starts_with("/etc/dock6/dock6.toml:1: key `uplink`: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn bad_mode_names_the_qualified_key() {
        let e = error("[networks.web]\nmode = \"bridge\"\n");
        assert!(
            e.starts_with(
                "/etc/dock6/dock6.toml:2: key `networks.web.mode`: unknown variant `bridge`"
            ),
            "{e}"
        );
    }

    #[test]
    fn errors_speak_the_configs_words_not_rust_types() {
        let e = error("networks.web = \"routed\"\n");
        assert!(e.contains("expected a [networks.NAME] table"), "{e}");
        assert!(!e.contains("Raw"), "{e}");
        let e = error("networks = 5\n");
        assert!(!e.contains("Raw"), "{e}");
    }

    #[test]
    fn impossible_values_are_refused() {
        assert!(
            error("resync_interval = \"0s\"")
                .contains("key `resync_interval`: \"0s\" is out of range")
        );
        assert!(error("resync_interval = \"soon\"").contains("is not a duration"));
        assert!(
            error("uplink = \"eth0\"\nhost_facts_grace = \"2h\"").starts_with(
                "/etc/dock6/dock6.toml:2: key `host_facts_grace`: \"2h\" is out of range"
            )
        );
        assert!(
            error("host_facts_grace = 30")
                .starts_with("/etc/dock6/dock6.toml:1: key `host_facts_grace`: invalid type")
        );
        assert!(error("host_facts_grace = \"a while\"").contains("is not a duration"));
        assert!(
            error("egress_address = \"fe80::1\"")
                .contains("key `egress_address`: fe80::1 cannot be a source")
        );
        assert!(error("egress_address = \"10.0.0.1\"").contains("is not an IPv6 address"));
        assert!(
            error("accept_mark = 3").contains("key `accept_mark`: 0x3 is not a single mark bit")
        );
        assert!(
            error("uplink = \"a/b\"")
                .contains("key `uplink`: \"a/b\" is not a valid interface name")
        );
        assert!(error("uplink = \"averyveryverylongname\"").contains("not a valid interface name"));
    }

    #[test]
    fn nptv6_prefix_parses_and_is_refused_elsewhere() {
        let c = parse("[networks.web]\nmode = \"nptv6\"\nprefix = \"2001:db8:5::/64\"\n").unwrap();
        assert_eq!(c.policy.network_modes.get("web"), Some(&Mode::Nptv6));
        assert_eq!(
            c.policy.network_prefixes.get("web"),
            Some(&PrefixSource::Fixed("2001:db8:5::/64".parse().unwrap()))
        );
        for (text, source) in [
            ("uplink", PrefixSource::Uplink),
            ("delegated", PrefixSource::Delegated),
        ] {
            let c = parse(&format!(
                "[networks.web]\nmode = \"nptv6\"\nprefix = \"{text}\"\n"
            ))
            .unwrap();
            assert_eq!(c.policy.network_prefixes.get("web"), Some(&source));
        }
        let e = error("[networks.web]\nmode = \"routed\"\nprefix = \"2001:db8:5::/64\"\n");
        assert!(
            e.starts_with("/etc/dock6/dock6.toml:3: key `networks.web.prefix`: only mode nptv6"),
            "{e}"
        );
        let e = error("[networks.web]\nmode = \"nptv6\"\nprefix = \"2001:db8:5::1/64\"\n");
        assert!(e.contains("has host bits set"), "{e}");
        let e = error("[networks.web]\nmode = \"nptv6\"\nprefix = \"nope\"\n");
        assert!(
            e.contains("is not \"uplink\", \"delegated\" or an IPv6 prefix"),
            "{e}"
        );
    }

    #[test]
    fn na_source_parses() {
        assert_eq!(parse("").unwrap().policy.na_source, NaSource::LinkLocal);
        let c = parse("na_source = \"target\"\n").unwrap();
        assert_eq!(c.policy.na_source, NaSource::Target);
        let e = error("uplink = \"eth0\"\nna_source = \"global\"\n");
        assert!(
            e.starts_with("/etc/dock6/dock6.toml:2: key `na_source`: \"global\" is not"),
            "{e}"
        );
    }

    #[test]
    fn status_socket_and_metrics_address() {
        let c = parse("status_socket = \"/tmp/x/dock6.sock\"\nmetrics_address = \"[::1]:9586\"\n")
            .unwrap();
        assert_eq!(c.status_socket, Path::new("/tmp/x/dock6.sock"));
        assert_eq!(c.metrics_address, Some("[::1]:9586".parse().unwrap()));
        assert!(
            error("status_socket = \"dock6.sock\"")
                .contains("key `status_socket`: \"dock6.sock\" is not an absolute path")
        );
        assert!(
            error("uplink = \"eth0\"\nmetrics_address = \"0.0.0.0:9586\"").starts_with(
                "/etc/dock6/dock6.toml:2: key `metrics_address`: 0.0.0.0:9586 is not a loopback address"
            )
        );
        assert!(error("metrics_address = \"localhost\"").contains("is not ADDRESS:PORT"));
        let remote =
            parse("metrics_address = \"[2001:db8::1]:9586\"\nmetrics_allow_remote = true\n")
                .unwrap();
        assert_eq!(
            remote.metrics_address,
            Some("[2001:db8::1]:9586".parse().unwrap())
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = error("uplink = \"eth0\"\nmode = \n");
        assert!(e.starts_with("/etc/dock6/dock6.toml:2:"), "{e}");
    }

    #[test]
    fn missing_explicit_file_is_an_error_but_missing_default_is_not() {
        let e = Config::load(Some(Path::new("/nonexistent/dock6.toml"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/dock6.toml: cannot read")
        );
    }
}
