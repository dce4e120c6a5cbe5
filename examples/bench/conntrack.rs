//! Deleting the flows of removed mappings (`delete_dnat_flows`) beside 0
//! and 100,000 unrelated conntrack entries, filled with `conntrack -R` (a
//! file of `conntrack -I` lines) in the bench's namespace: one mapping, and
//! one removed container (its 10 mappings, 5 tcp and 5 udp, in one call as
//! the agent makes it), each mapping with one DNAT'ed flow to delete.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use dock6::apply::{DnatTarget, delete_dnat_flows};
use dock6::nft::L4Proto;

use crate::report::{Row, count, median, ms};

const RUNS: usize = 7;
const TARGET: &str = "fd00:b::2";
/// The removed container's published ports.
const CONTAINER_PORTS: u16 = 10;

pub fn rows(scratch: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let one = vec![DnatTarget {
        proto: L4Proto::Udp,
        host_port: 5353,
        target: TARGET.parse()?,
        target_port: 53,
    }];
    let container: Vec<DnatTarget> = (0..CONTAINER_PORTS)
        .map(|i| DnatTarget {
            proto: if i % 2 == 0 {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            },
            host_port: 8000 + i,
            target: one[0].target,
            target_port: 80 + i,
        })
        .collect();
    let mut rows = Vec::new();
    for unrelated in [0, 100_000] {
        conntrack(&["-F"])?;
        fill(scratch, unrelated)?;
        let entries = format!("{} unrelated entries", count(unrelated));
        let time = delete_times(&one)?;
        rows.push(Row::new(
            format!("conntrack: delete one removed mapping's flows, median of {RUNS}"),
            entries.clone(),
            ms(time),
        ));
        let time = delete_times(&container)?;
        let row = Row::new(
            format!(
                "conntrack: delete one removed container's flows ({CONTAINER_PORTS} mappings, one call), median of {RUNS}"
            ),
            entries,
            ms(time),
        );
        rows.push(match unrelated {
            0 => row,
            _ => row.target("≤ 5 ms", time <= Duration::from_millis(5)),
        });
    }
    conntrack(&["-F"])?;
    Ok(rows)
}

/// The median time of `RUNS` calls deleting the flows of `targets`, each
/// mapping with one DNAT'ed flow from a fresh client port.
fn delete_times(targets: &[DnatTarget]) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for run in 0..RUNS {
        for t in targets {
            insert_dnat_flow(t, 40_000 + run as u16)?;
        }
        let t = Instant::now();
        let deleted = delete_dnat_flows(targets)?;
        times.push(t.elapsed());
        ensure!(
            deleted == targets.len(),
            "deleted {deleted} flows, expected {}",
            targets.len()
        );
    }
    Ok(median(&times))
}

/// One flow from a client to the host's port, DNAT'ed to the mapping's target.
fn insert_dnat_flow(t: &DnatTarget, client_port: u16) -> anyhow::Result<()> {
    let proto = t.proto.name();
    let (sport, dport) = (client_port.to_string(), t.host_port.to_string());
    let mut args = vec![
        "-I",
        "-s",
        "2001:db8:2::1",
        "-d",
        "2001:db8:1::10",
        "-p",
        proto,
        "--sport",
        &sport,
        "--dport",
        &dport,
    ];
    // conntrack -I needs a TCP entry's state.
    if t.proto == L4Proto::Tcp {
        args.extend(["--state", "ESTABLISHED"]);
    }
    let nat = format!("[{}]:{}", t.target, t.target_port);
    args.extend(["--dst-nat", &nat, "-t", "600"]);
    conntrack(&args)
}

/// `n` established TCP entries between addresses no mapping uses.
fn fill(scratch: &std::path::Path, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut lines = String::with_capacity(n * 120);
    for i in 0..n {
        let _ = writeln!(
            lines,
            "-I -s 2001:db8:3:{:x}::{:x} -d 2001:db8:4::{:x} -p tcp --sport {} --dport 443 --state ESTABLISHED -t 3600",
            i / 50_000,
            i % 50_000 + 1,
            i % 7 + 1,
            1024 + i % 50_000
        );
    }
    std::fs::write(scratch, lines).with_context(|| format!("write {}", scratch.display()))?;
    let file = scratch.display().to_string();
    conntrack(&["-R", &file])?;
    let _ = std::fs::remove_file(scratch);
    let counted = String::from_utf8_lossy(&Command::new("conntrack").arg("-C").output()?.stdout)
        .trim()
        .parse::<usize>()
        .unwrap_or(0);
    ensure!(counted >= n, "conntrack -C counts {counted}, expected {n}");
    Ok(())
}

fn conntrack(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("conntrack").args(args).output()?;
    if !out.status.success() {
        bail!(
            "conntrack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
