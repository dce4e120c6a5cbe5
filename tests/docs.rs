//! The documentation against the code:
//!
//! - docs/configuration.md describes every key of the config file (as the
//!   parser reads it, and as dist/dock6.toml ships it) and every label, and
//!   nothing that is gone; each key with its type, its default and an
//!   example that parses;
//! - every relative link of README.md and docs/*.md, and every repository
//!   path they name, exists (a `#fragment` as a heading of its page);
//! - they talk about the product, not about how it was made;
//! - the example /etc/nftables.conf of docs/security.md loads (`nft -c` in a
//!   throwaway network namespace; root);
//! - docs/operations.md explains every finding of `dock6 check` and lists
//!   every metric.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dock6::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// README.md and every page of docs/, as repository-relative paths.
fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

const CONFIGURATION: &str = "docs/configuration.md";

// ---------------------------------------------------------------- the keys

/// A `### `NAME`` section of a page: its name and its text up to the next heading.
struct Section {
    name: String,
    text: String,
}

/// Lines with whether each is inside a fenced code block (where `#` starts
/// a comment, not a heading).
fn lines_outside_code(text: &str) -> Vec<(bool, &str)> {
    let mut in_code = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                return (true, line);
            }
            (in_code, line)
        })
        .collect()
}

/// The `### `NAME`` sections of a page (a heading that is one code span).
fn code_sections(page: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<Section> = None;
    for (in_code, line) in lines_outside_code(page) {
        if !in_code && line.starts_with('#') {
            sections.extend(current.take());
            let name = line
                .strip_prefix("### `")
                .and_then(|rest| rest.strip_suffix('`'))
                .filter(|name| !name.contains('`'));
            current = name.map(|name| Section {
                name: name.to_string(),
                text: String::new(),
            });
            continue;
        }
        if let Some(section) = current.as_mut() {
            section.text.push_str(line);
            section.text.push('\n');
        }
    }
    sections.extend(current);
    sections
}

fn is_label(name: &str) -> bool {
    name.starts_with("dock6.")
}

/// dist/dock6.toml with its commented-out `#key = value` lines and
/// `#[table]` headers made live (the file shows every key commented).
fn shipped_config_uncommented(keep: impl Fn(&str) -> bool) -> String {
    read("dist/dock6.toml")
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if is_commented_setting(rest) && keep(rest) => rest.to_string(),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` or `[table]` right after the `#`, as opposed to prose.
fn is_commented_setting(rest: &str) -> bool {
    let Some(first) = rest.chars().next() else {
        return false;
    };
    first == '['
        || ((first.is_ascii_alphabetic() || first == '_')
            && rest.split_once('=').is_some_and(|(key, _)| {
                key.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            }))
}

/// The dotted keys of a TOML text, a table under `networks` written as
/// `networks.NAME`, as `dock6::config::file_keys` names them.
fn keys_of(toml_text: &str) -> BTreeSet<String> {
    let table: toml::Table = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"));
    let mut keys = BTreeSet::new();
    flatten("", &table, &mut keys);
    keys.into_iter()
        .map(|key| match key.strip_prefix("networks.") {
            Some(rest) => match rest.split_once('.') {
                Some((_name, key)) => format!("networks.NAME.{key}"),
                None => key,
            },
            None => key,
        })
        .collect()
}

fn flatten(prefix: &str, table: &toml::Table, keys: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => flatten(&format!("{path}."), inner, keys),
            _ => {
                keys.insert(path);
            }
        }
    }
}

fn file_keys() -> BTreeSet<String> {
    dock6::config::file_keys().into_iter().collect()
}

#[test]
fn every_config_key_is_in_the_shipped_file_and_documented_and_nothing_else_is() {
    let code = file_keys();
    assert!(code.len() >= 10, "the parser's keys: {code:?}");
    let shipped = keys_of(&shipped_config_uncommented(|_| true));
    let documented: BTreeSet<String> = code_sections(&read(CONFIGURATION))
        .into_iter()
        .map(|s| s.name)
        .filter(|name| !is_label(name))
        .collect();
    let problems: Vec<String> = [
        (&code, &shipped, "not in dist/dock6.toml"),
        (
            &shipped,
            &code,
            "in dist/dock6.toml but not a key the parser knows",
        ),
        (
            &code,
            &documented,
            "not documented in docs/configuration.md (a `### `KEY`` section)",
        ),
        (
            &documented,
            &code,
            "documented in docs/configuration.md but not a key the parser knows",
        ),
    ]
    .into_iter()
    .flat_map(|(have, lack, what)| {
        have.difference(lack)
            .map(move |key| format!("{key}: {what}"))
    })
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The `- LABEL: VALUE` line of a key's section.
fn field<'a>(section: &'a Section, label: &str) -> &'a str {
    section
        .text
        .lines()
        .find_map(|line| line.strip_prefix(&format!("- {label}: ")))
        .unwrap_or_else(|| panic!("`{}` has no `- {label}:` line", section.name))
}

/// The first ```toml block of a section.
fn toml_example(section: &Section) -> String {
    let after = section
        .text
        .split_once("```toml\n")
        .unwrap_or_else(|| panic!("`{}` has no ```toml example", section.name))
        .1;
    after
        .split_once("```")
        .expect("a closed code block")
        .0
        .to_string()
}

/// The value dist/dock6.toml shows for `key`, when that line is the
/// default: uncommenting it alone leaves the configuration as it is.
fn shipped_default(key: &str) -> Option<String> {
    let text = shipped_config_uncommented(|rest| key_of(rest) == key);
    let line = text.lines().find(|l| key_of(l) == key)?;
    let parsed = Config::parse(&text, Path::new("dist/dock6.toml")).ok()?;
    (parsed == Config::default()).then(|| {
        line.split_once('=')
            .expect("key = value")
            .1
            .trim()
            .to_string()
    })
}

fn key_of(line: &str) -> &str {
    line.split('=').next().unwrap_or(line).trim()
}

#[test]
fn each_documented_key_has_a_type_its_default_and_an_example_that_parses() {
    let sections = code_sections(&read(CONFIGURATION));
    let keys = file_keys();
    let mut checked = 0;
    for section in sections.iter().filter(|s| keys.contains(&s.name)) {
        assert!(!field(section, "type").trim().is_empty());
        let default = field(section, "default");
        match section.name.strip_prefix("networks.NAME.") {
            Some(_) => assert!(default.starts_with("none"), "`{}`: {default}", section.name),
            None => match shipped_default(&section.name) {
                Some(value) => assert!(
                    default.contains(&format!("`{value}`")),
                    "`{}`: the default dist/dock6.toml shows is `{value}`, the page says {default:?}",
                    section.name
                ),
                None => assert!(
                    default.starts_with("none"),
                    "`{}`: dist/dock6.toml shows an example, not a default; the page says {default:?}",
                    section.name
                ),
            },
        }
        let example = toml_example(section);
        if let Err(e) = Config::parse(&example, Path::new("docs/configuration.md")) {
            panic!(
                "the example of `{}` is refused: {e}\n{example}",
                section.name
            );
        }
        assert!(
            keys_of(&example).contains(&section.name),
            "the example of `{}` does not set it:\n{example}",
            section.name
        );
        checked += 1;
    }
    assert_eq!(checked, keys.len(), "every key was checked");
}

/// Every `const …_LABEL: &str = "dock6.…"` of the source: the labels dock6 reads.
fn label_constants() -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let mut dirs = vec![repo().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            for line in text.lines() {
                let Some((declaration, value)) = line.split_once(": &str = \"") else {
                    continue;
                };
                if declaration.trim_end().ends_with("_LABEL") && value.starts_with("dock6.") {
                    labels.insert(value.trim_end_matches("\";").to_string());
                }
            }
        }
    }
    labels
}

#[test]
fn every_label_is_documented_and_nothing_else_is() {
    let code = label_constants();
    assert!(
        code.contains("dock6.expose"),
        "the labels in src/: {code:?}"
    );
    let documented: BTreeSet<String> = code_sections(&read(CONFIGURATION))
        .into_iter()
        .map(|s| s.name)
        .filter(|name| is_label(name))
        .collect();
    let missing: Vec<&String> = code.difference(&documented).collect();
    let gone: Vec<&String> = documented.difference(&code).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "labels dock6 reads but docs/configuration.md lacks: {missing:?}; documented but not read: {gone:?}"
    );
}

// ---------------------------------------------------------------- links

/// The text outside code blocks and code spans, where a link is a link.
fn prose(page: &str) -> String {
    lines_outside_code(page)
        .into_iter()
        .filter(|(in_code, _)| !in_code)
        .map(|(_, line)| line.split('`').step_by(2).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The targets of `[text](target)` links.
fn link_targets(page: &str) -> Vec<String> {
    prose(page)
        .split("](")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(')')
                .map(|(target, _)| target.trim().to_string())
        })
        .collect()
}

/// GitHub's fragment for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn fragments(page: &str) -> BTreeSet<String> {
    lines_outside_code(page)
        .into_iter()
        .filter(|(in_code, line)| !in_code && line.starts_with('#'))
        .map(|(_, line)| slug(line.trim_start_matches('#')))
        .collect()
}

/// Where a link from `page` to `target` leads, or why it leads nowhere.
fn check_link(page: &str, target: &str) -> Result<(), String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return Ok(());
    }
    let (file, fragment) = match target.split_once('#') {
        Some((file, fragment)) => (file, Some(fragment)),
        None => (target, None),
    };
    let base = Path::new(page).parent().unwrap_or(Path::new(""));
    let path = match file {
        "" => PathBuf::from(page),
        file => base.join(file),
    };
    let full = repo().join(&path);
    if !full.exists() {
        return Err(format!(
            "{page}: link to {target}: {} does not exist",
            path.display()
        ));
    }
    if let Some(fragment) = fragment {
        let text = std::fs::read_to_string(&full).map_err(|e| format!("{page}: {target}: {e}"))?;
        if !fragments(&text).contains(fragment) {
            return Err(format!(
                "{page}: link to {target}: no heading #{fragment} there"
            ));
        }
    }
    Ok(())
}

/// Top-level folders of the repository whose paths the pages name.
const REPO_FOLDERS: &[&str] = &[
    "docs/",
    "src/",
    "tests/",
    "dist/",
    "pack/",
    "lab/",
    "xtask/",
    "rules/",
    "examples/",
    "fuzz/",
];

/// Repository paths named anywhere in a page (code spans included): a word
/// that begins with one of [`REPO_FOLDERS`]. Patterns (`{a,b}`, `NAME`, `*`)
/// are left out.
fn repo_paths(page: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
    let mut paths = Vec::new();
    let chars: Vec<char> = page.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_path_char(chars[i - 1]) || chars[i - 1] == '~');
        if starts_word {
            let rest: String = chars[i..].iter().take(16).collect();
            if REPO_FOLDERS.iter().any(|f| rest.starts_with(f)) {
                let end = (i..chars.len())
                    .find(|&j| !is_path_char(chars[j]))
                    .unwrap_or(chars.len());
                let word: String = chars[i..end].iter().collect();
                let next = chars.get(end).copied().unwrap_or(' ');
                let pattern =
                    next == '{' || next == '*' || word.contains("NAME") || word.ends_with('-');
                if !pattern {
                    paths.push(word.trim_end_matches(['.', ',']).to_string());
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    paths
}

#[test]
fn every_link_and_every_path_the_pages_name_exists() {
    let mut problems = Vec::new();
    let mut links = 0;
    let mut paths = 0;
    for page in pages() {
        let text = read(&page);
        for target in link_targets(&text) {
            links += 1;
            problems.extend(check_link(&page, &target).err());
        }
        for path in repo_paths(&text) {
            paths += 1;
            if !repo().join(&path).exists() {
                problems.push(format!("{page}: names {path}, which does not exist"));
            }
        }
    }
    assert!(
        links >= 10 && paths >= 10,
        "{links} links, {paths} paths: the scan works"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_link_check_finds_broken_links() {
    // The control: what the test above would miss if its parsing were wrong.
    let page =
        "See [gone](docs/gone.md), [modes](docs/modes.md#no-such-heading) and `src/gone.rs`.";
    let targets = link_targets(page);
    assert_eq!(targets, ["docs/gone.md", "docs/modes.md#no-such-heading"]);
    assert!(check_link("README.md", &targets[0]).is_err());
    assert!(check_link("README.md", &targets[1]).is_err());
    assert!(check_link("README.md", "docs/modes.md").is_ok());
    assert_eq!(
        repo_paths(page),
        ["docs/gone.md", "docs/modes.md", "src/gone.rs"]
    );
    assert_eq!(
        slug(" The mark contract: `/etc/nftables.conf`"),
        "the-mark-contract-etcnftablesconf"
    );
}

// ---------------------------------------------------------------- words

/// Words about how dock6 was made, which mean nothing to its reader.
const BUILD_WORDS: &[&str] = &[
    "issue",
    "issues",
    "anchor",
    "anchors",
    "closing note",
    "was silent",
    "design.md",
    "design choices",
    "the brief",
];

fn words_of_building(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    BUILD_WORDS
        .iter()
        .filter(|word| {
            lower.match_indices(*word).any(|(at, _)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + word.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        })
        .map(|word| word.to_string())
        .collect()
}

#[test]
fn the_pages_talk_about_the_product_not_about_how_it_was_made() {
    let found: Vec<String> = pages()
        .iter()
        .flat_map(|page| {
            words_of_building(&read(page))
                .into_iter()
                .map(move |word| format!("{page}: {word:?}"))
        })
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The control.
    assert_eq!(
        words_of_building("where the Issue was silent"),
        ["issue", "was silent"]
    );
    assert!(words_of_building("tissue").is_empty());
}

// ---------------------------------------------------------------- nftables.conf

/// The ```nft block that follows the line `<!-- nftables.conf -->` in docs/security.md.
fn example_nftables_conf() -> String {
    let page = read("docs/security.md");
    let after = page
        .split_once("<!-- nftables.conf -->")
        .expect("docs/security.md marks its example with <!-- nftables.conf -->")
        .1;
    let block = after.split_once("```nft\n").expect("a ```nft block").1;
    block
        .split_once("```")
        .expect("a closed block")
        .0
        .to_string()
}

/// `nft -c -f FILE` in a network namespace of its own: checked by the
/// kernel, committed nowhere.
fn nft_check_in_netns(text: &str) -> Result<(), String> {
    let ns = common::netns::Netns::new("nftconf");
    let file = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&file, text).expect("write the example");
    let out = ns.exec(&["nft", "-c", "-f", file.to_str().expect("utf-8 path")]);
    std::fs::remove_file(&file).ok();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn the_example_nftables_conf_loads_and_lets_dock6_s_mark_through() {
    let test = "the_example_nftables_conf_loads_and_lets_dock6_s_mark_through";
    if !common::require_root(test) || !common::require_tools(test, &["nft", "ip"]) {
        return;
    }
    let example = example_nftables_conf();
    let mark = dock6::config::DEFAULT_ACCEPT_MARK;
    let mark_line = format!("meta mark & {mark:#010x} == {mark:#010x} accept");
    assert!(
        example.contains(&mark_line),
        "the example's forward chain lets dock6's mark through ({mark_line}):\n{example}"
    );
    assert!(example.contains("policy drop"), "{example}");
    nft_check_in_netns(&example)
        .unwrap_or_else(|e| panic!("nft -c refused the example: {e}\n{example}"));
    // The control: a mistake in it is refused.
    let broken = example.replacen("policy drop", "policy dropp", 1);
    assert!(
        nft_check_in_netns(&broken).is_err(),
        "nft -c accepted a broken file"
    );
}

// ---------------------------------------------------------------- operations

/// The string literal that follows each `marker` in a source file.
fn literals_after(source: &str, marker: &str) -> BTreeSet<String> {
    source
        .split(marker)
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            Some(rest.split_once('"')?.0.to_string())
        })
        .collect()
}

#[test]
fn every_check_finding_is_in_the_troubleshooting_list() {
    let ids = literals_after(&read("src/check/findings.rs"), "Finding::new(");
    assert!(
        ids.len() >= 20,
        "the finding ids in src/check/findings.rs: {ids:?}"
    );
    let operations = read("docs/operations.md");
    let troubleshooting = operations
        .split_once("## When something is wrong")
        .expect("docs/operations.md has `## When something is wrong`")
        .1;
    let troubleshooting = troubleshooting.split("\n## ").next().unwrap_or_default();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !troubleshooting.contains(&format!("**`{id}`**")))
        .collect();
    assert!(
        missing.is_empty(),
        "findings of `dock6 check` not explained under \"When something is wrong\" in docs/operations.md: {missing:?}"
    );
}

#[test]
fn every_metric_is_in_the_metrics_table() {
    let names = literals_after(&read("src/reconcile/metrics.rs"), ".register(");
    assert!(
        names.len() >= 10,
        "the metrics in src/reconcile/metrics.rs: {names:?}"
    );
    let operations = read("docs/operations.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            // Counters are served with `_total`, info with `_info`.
            !["", "_total", "_info"]
                .iter()
                .any(|suffix| operations.contains(&format!("| `{name}{suffix}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metrics not in docs/operations.md's table: {missing:?}"
    );
}
