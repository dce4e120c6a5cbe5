//! What dist/ ships: the systemd unit passes `systemd-analyze verify` and
//! has what the daemon relies on; the commented config parses, and its
//! commented values are the defaults.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use dock6::config::Config;

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(file)
}

/// `systemd-analyze verify` of `unit` with its ExecStart pointing at
/// `binary` (verify checks that the binary exists); returns its complaints.
pub fn verify_unit(unit: &str, binary: &Path, dir: &Path) -> Result<(), String> {
    let unit = unit.replace("/usr/sbin/dock6", binary.to_str().expect("utf-8 path"));
    std::fs::create_dir_all(dir).expect("create unit dir");
    let path = dir.join("dock6.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Other units of this machine may draw warnings too: only ours count.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("dock6")).collect();
    match out.status.success() && ours.is_empty() {
        true => Ok(()),
        false => Err(stderr.into_owned()),
    }
}

#[test]
fn the_unit_verifies_and_has_what_the_daemon_relies_on() {
    let test = "the_unit_verifies_and_has_what_the_daemon_relies_on";
    if !common::require_tools(test, &["systemd-analyze"]) {
        return;
    }
    let unit = std::fs::read_to_string(dist("dock6.service")).expect("dist/dock6.service");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "After=nftables.service",
        "Before=docker.service",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "RuntimeDirectory=dock6",
        // The record that dock6 turned forwarding on must outlive a stop.
        "RuntimeDirectoryPreserve=yes",
        "ExecStart=/usr/sbin/dock6 run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{line} not in the unit"
        );
    }
    assert!(
        !unit.contains("ProtectKernelTunables=yes"),
        "dock6 writes /proc/sys/net"
    );
    // A bounded descriptor budget (soft and hard alike), with room for
    // what dock6 holds at most: netlink and Docker sockets, status
    // clients, 16 metrics connections.
    let nofile = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .unwrap_or_else(|| panic!("LimitNOFILE= not in the unit"));
    let nofile: u64 = nofile
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("LimitNOFILE={nofile}: one number, no infinity"));
    assert!((256..=65536).contains(&nofile), "LimitNOFILE={nofile}");
    let dir = std::env::temp_dir().join(format!("dock6-dist-{}", std::process::id()));
    let verified = verify_unit(&unit, Path::new(env!("CARGO_BIN_EXE_dock6")), &dir);
    // The control: a unit with a mistake in it does not verify.
    let broken = unit.replace("Restart=always", "Restart=always\nRestartEvery=2");
    let refused = verify_unit(&broken, Path::new(env!("CARGO_BIN_EXE_dock6")), &dir);
    std::fs::remove_dir_all(&dir).ok();
    verified.unwrap_or_else(|e| panic!("systemd-analyze verify:\n{e}"));
    let complaint = refused.expect_err("an unknown key is refused");
    assert!(complaint.contains("RestartEvery"), "{complaint}");
}

/// Keys whose line in dist/dock6.toml is an example, not a default.
const EXAMPLES: &[&str] = &[
    "uplink",
    "egress_address",
    "metrics_address",
    "[networks.web]",
    "[networks.mapped]",
    "mode",
    "prefix",
];
/// `#key = value` lines (no space after `#`) uncommented when `keep` says.
fn uncommented(text: &str, keep: impl Fn(&str) -> bool) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() && keep(key(rest)) => {
                rest.to_string()
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn key(line: &str) -> &str {
    line.split('=').next().unwrap_or(line).trim()
}

#[test]
fn the_shipped_config_parses_and_its_values_are_the_defaults() {
    let path = dist("dock6.toml");
    let text = std::fs::read_to_string(&path).expect("dist/dock6.toml");
    let as_shipped = Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(as_shipped, Config::default());

    let defaults = uncommented(&text, |k| !EXAMPLES.contains(&k));
    let parsed = Config::parse(&defaults, &path).unwrap_or_else(|e| panic!("{e}\n{defaults}"));
    assert_eq!(
        parsed,
        Config::default(),
        "a commented value is not the default"
    );

    let everything = uncommented(&text, |_| true);
    let examples = Config::parse(&everything, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(examples.policy.uplink.as_deref(), Some("eth0"));
    assert!(examples.metrics_address.is_some());
    assert_eq!(examples.policy.network_modes.len(), 2);
    assert_eq!(examples.policy.network_prefixes.len(), 1);
    // That every key of the parser is in the file (and no other) is
    // tests/docs.rs's check, against `dock6::config::file_keys()`.
}
