//! Golden files: every scenario's rendered plan must match `rules/NAME/plan.nft`.
//! `cargo xtask bless` (DOCK6_BLESS=1) rewrites them; review the diff like code.

mod common;

use std::path::Path;

fn bless() -> bool {
    std::env::var("DOCK6_BLESS").is_ok_and(|v| v == "1")
}

/// Compares, or rewrites when blessing; returns a failure description.
fn check(golden: &Path, actual: &str) -> Option<String> {
    if bless() {
        std::fs::write(golden, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let diff: Vec<String> = diff_lines(&expected, actual);
    Some(format!(
        "{} differs (run `cargo xtask bless` if intended):\n{}",
        golden.display(),
        diff.join("\n")
    ))
}

fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = Vec::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                out.push(format!(
                    "  line {}:\n  - {}\n  + {}",
                    i + 1,
                    x.unwrap_or(&"<none>"),
                    y.unwrap_or(&"<none>")
                ));
            }
        }
        if out.len() >= 10 {
            out.push("  ...".into());
            break;
        }
    }
    out
}

#[test]
fn every_scenario_matches_its_golden_plan() {
    let failures: Vec<String> = common::scenarios()
        .iter()
        .filter_map(|s| check(&s.golden(), &s.plan().to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bootstrap_table_matches_its_golden_file() {
    let text = common::bootstrap_table().replace_script();
    if let Some(failure) = check(&common::bootstrap_golden(), &text) {
        panic!("{failure}");
    }
}

#[test]
fn every_golden_file_has_a_scenario() {
    for entry in std::fs::read_dir(common::rules_dir())
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let path = entry.path();
        if path.is_dir() {
            assert!(
                path.join("snapshot.json").exists(),
                "{} has no snapshot.json",
                path.display()
            );
        }
    }
}
