//! Every golden ruleset must be accepted by `nft -c -f`, checked in a
//! throwaway network namespace (`unshare -n`) so nothing touches the host.

mod common;

use std::path::Path;
use std::process::Command;

fn nft_check(file: &Path) -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["--net", "nft", "-c", "-f"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run unshare/nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: nft -c refused it:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_golden_ruleset_passes_nft_check() {
    if !common::require_root("every_golden_ruleset_passes_nft_check") {
        return;
    }
    let mut files: Vec<_> = common::scenarios().iter().map(|s| s.golden()).collect();
    files.push(common::bootstrap_golden());
    let failures: Vec<String> = files.iter().filter_map(|f| nft_check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nft_check_refuses_a_broken_ruleset() {
    // The control: the check above could not pass by accident.
    if !common::require_root("nft_check_refuses_a_broken_ruleset") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dock6-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.nft");
    std::fs::write(
        &file,
        "table inet dock6 {\n\tchain c {\n\t\tip6 daddr @missing drop\n\t}\n}\n",
    )
    .unwrap();
    let result = nft_check(&file);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        result.is_err(),
        "nft -c accepted a rule that uses a missing set"
    );
}
