//! Prints how long the netlink encoder takes (build + commit), next to
//! `nft -f` loading the same table's text. Never asserts anything.
//!
//! Needs root; it re-runs itself under `unshare -n`, so every kernel change
//! happens in a throw-away network namespace:
//! `cargo run --release --example nft_bench`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dock6::apply::nftables::{ElementChange, replace_table, update_elements};
use dock6::nft::TABLE_NAME;

const RUNS: usize = 7;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("DOCK6_BENCH_IN_NETNS").is_none() {
        let exe = std::env::current_exe()?;
        let status = Command::new("unshare")
            .arg("-n")
            .arg(exe)
            .env("DOCK6_BENCH_IN_NETNS", "1")
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }

    println!(
        "{:<44} {:>12} {:>12}",
        "operation (median of 7)", "netlink", "nft -f"
    );
    for n in [1usize, 1_000, 10_000] {
        let table = dock6::nft::samples::open_ports_table(n);
        let ours = median(|| replace_table(&table).map_err(Into::into))?;
        let theirs = median(|| nft_f(&table.replace_script()))?;
        println!(
            "{:<44} {:>12} {:>12}",
            format!("replace_table, set of {n} element(s)"),
            ms(ours),
            ms(theirs)
        );
    }
    for n in [1usize, 1_000, 10_000] {
        let empty = dock6::nft::samples::open_ports_table(0);
        let adds: Vec<ElementChange> = dock6::nft::samples::open_ports_table(n).sets[0]
            .elements
            .iter()
            .map(|e| ElementChange::Add {
                set: "open_ports".into(),
                element: e.clone(),
            })
            .collect();
        let mut times = Vec::new();
        for _ in 0..RUNS {
            replace_table(&empty)?;
            let t = Instant::now();
            update_elements(TABLE_NAME, &adds)?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{:<44} {:>12} {:>12}",
            format!("update_elements, add {n} element(s)"),
            ms(times[RUNS / 2]),
            ""
        );
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/all-three-modes");
    let snapshot = dock6::source::load_snapshot(&dir.join("snapshot.json"))?;
    let table = dock6::plan::plan(&dock6::plan::Policy::default(), &snapshot).ruleset;
    let ours = median(|| replace_table(&table).map_err(Into::into))?;
    let theirs = median(|| nft_f(&table.replace_script()))?;
    println!(
        "{:<44} {:>12} {:>12}",
        "replace_table, all-three-modes scenario",
        ms(ours),
        ms(theirs)
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[RUNS / 2])
}

fn nft_f(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(script.as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "nft -f failed");
    Ok(())
}
