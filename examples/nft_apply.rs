//! Applies a planned table (or the bootstrap table) with the netlink
//! encoder, in the current network namespace. A development aid:
//! `unshare -n sh -c 'cargo run --example nft_apply -- rules/x/snapshot.json && nft list ruleset'`.

fn main() -> anyhow::Result<()> {
    let table = match std::env::args().nth(1) {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let config_path = path.with_file_name("dock6.toml");
            let config = if config_path.is_file() {
                dock6::config::Config::load(Some(&config_path))?
            } else {
                dock6::config::Config::default()
            };
            dock6::plan::plan(&config, &dock6::source::load_snapshot(&path)?).ruleset
        }
        None => dock6::plan::bootstrap_table(),
    };
    dock6::apply::nft::replace_table(&table)?;
    Ok(())
}
