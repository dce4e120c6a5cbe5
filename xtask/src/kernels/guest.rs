//! What runs in each guest: `/init`, a busybox script that mounts the pseudo file systems, points
//! `kernel.modprobe` at kmod, runs each check (a test of the workspace, by name) and prints one
//! result line per check for the xtask to parse, then powers the guest off.

use std::fmt::Write as _;

/// Printed when `/init` starts: `dock6-kernel-guest up RELEASE`.
pub const UP: &str = "dock6-kernel-guest up";
/// Printed after the last check.
pub const DONE: &str = "dock6-kernel-guest done";
/// `dock6-kernel-check pass|fail NAME START END [exit=N]` (uptimes in seconds); a failed
/// check's output precedes its line, each line prefixed by [`OUTPUT`].
pub const RESULT: &str = "dock6-kernel-check";
pub const OUTPUT: &str = "  | ";

/// How long one check may take in the guest before it counts as failed.
pub const CHECK_TIMEOUT_SECS: u32 = 300;

/// Elements per large set in the in-place replace (20,000 on the host): several netlink messages
/// per set still, at a size an emulated CPU lists in seconds.
const GUEST_LARGE_SETS: &str = "300";

/// One check: a test of one test program, with its environment.
pub struct Check {
    pub name: String,
    pub program: &'static str,
    pub test: &'static str,
    pub env: Vec<(&'static str, String)>,
}

impl Check {
    fn new(name: impl Into<String>, program: &'static str, test: &'static str) -> Check {
        Check {
            name: name.into(),
            program,
            test,
            env: Vec::new(),
        }
    }

    fn with_env(mut self, key: &'static str, value: impl Into<String>) -> Check {
        self.env.push((key, value.into()));
        self
    }
}

/// The test programs the checks run (`tests/NAME.rs`).
pub const PROGRAMS: &[&str] = &[
    "roundtrip",
    "replace_in_place",
    "traffic",
    "conntrack",
    "fed_agent",
    "kernel_probe",
];

/// Every check, in the order the guest runs them: each golden scenario on its own, then the
/// in-place replace, traffic, the conntrack delete, `dock6 run`'s kernel probe and the agent.
pub fn checks(scenarios: &[String]) -> Vec<Check> {
    let mut checks: Vec<Check> = scenarios
        .iter()
        .map(|s| {
            Check::new(
                format!("golden:{s}"),
                "roundtrip",
                "every_scenario_roundtrips",
            )
            .with_env("DOCK6_SCENARIOS", s.clone())
        })
        .collect();
    checks.extend([
        Check::new(
            "golden:bootstrap",
            "roundtrip",
            "bootstrap_table_roundtrips",
        ),
        Check::new("golden:extra-shapes", "roundtrip", "extra_shapes_roundtrip"),
        Check::new(
            "replace-in-place",
            "replace_in_place",
            "replaced_table_reads_back_as_planned_every_way",
        )
        .with_env("DOCK6_LARGE_SETS", GUEST_LARGE_SETS),
        Check::new(
            "traffic:nat66-egress",
            "traffic",
            "ula_container_reaches_upstream_as_the_host",
        ),
        Check::new(
            "traffic:published-port",
            "traffic",
            "published_ports_dnat_to_the_container_keeping_the_client_address",
        ),
        Check::new(
            "conntrack-delete",
            "conntrack",
            "a_moved_udp_mapping_stops_sticking_once_its_flows_are_deleted",
        ),
        Check::new(
            "probe:namespace",
            "kernel_probe",
            "run_loads_its_table_in_a_throwaway_namespace_when_it_may",
        ),
        Check::new(
            "probe:in-place",
            "kernel_probe",
            "run_without_cap_sys_admin_has_the_kernel_check_its_table_in_place",
        ),
        Check::new(
            "agent:first-pass",
            "fed_agent",
            "a_fed_agent_reaches_a_converged_pass_that_publishes_the_port",
        ),
        Check::new(
            "agent:restore-after-flush",
            "fed_agent",
            "a_fed_agent_puts_its_table_back_after_nft_flush_ruleset",
        ),
    ]);
    checks
}

/// The guest's `/init`.
pub fn init_script(checks: &[Check]) -> String {
    let mut s = format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
# busybox's modprobe does not autoload here; kmod does.
echo /usr/sbin/modprobe > /proc/sys/kernel/modprobe
# busybox sh prefers its own ip applet: the real one by path.
/usr/sbin/ip link set lo up
echo "{UP} $(uname -r)"
check() {{
    name=$1
    shift
    start=$(cut -d' ' -f1 /proc/uptime)
    timeout {CHECK_TIMEOUT_SECS} "$@" >/tmp/check.out 2>&1
    rc=$?
    end=$(cut -d' ' -f1 /proc/uptime)
    if [ "$rc" -eq 0 ]; then
        echo "{RESULT} pass $name $start $end"
    else
        # The panic's message first (the kernel's error is in it), else the output's end.
        at=$(grep -m1 -n 'panicked at' /tmp/check.out | cut -d: -f1)
        if [ -n "$at" ]; then
            sed -n "$at,$((at + 150))p" /tmp/check.out | sed 's/^/{OUTPUT}/'
        else
            tail -n 60 /tmp/check.out | sed 's/^/{OUTPUT}/'
        fi
        echo "{RESULT} fail $name $start $end exit=$rc"
    fi
}}
"#
    );
    for check in checks {
        let env: String = check.env.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let _ = writeln!(
            s,
            "check {} env{env} /checks/{} --exact {} --test-threads=1",
            check.name, check.program, check.test
        );
    }
    let _ = writeln!(s, "echo \"{DONE}\"\npoweroff -f");
    s
}
