//! dock6(8): `dist/dock6.8` is what the command line generates (clap_mangen),
//! and every command's `--help`, as the binary prints it, is in it.
//! `cargo xtask man` (DOCK6_BLESS=1) rewrites the file.

use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory as _;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/dock6.8")
}

fn bless() -> bool {
    std::env::var("DOCK6_BLESS").is_ok_and(|v| v == "1")
}

#[test]
fn the_shipped_man_page_is_the_generated_one() {
    let generated = dock6::cli::man_page();
    if bless() {
        std::fs::write(checked_in(), &generated).expect("write dist/dock6.8");
        return;
    }
    let shipped = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        shipped == generated,
        "dist/dock6.8 is not what the command line generates: run `cargo xtask man`\n{}",
        first_difference(&shipped, &generated)
    );
}

fn first_difference(shipped: &str, generated: &str) -> String {
    let mut shipped_lines = shipped.lines();
    for (n, line) in generated.lines().enumerate() {
        match shipped_lines.next() {
            Some(old) if old == line => {}
            old => return format!("line {}:\n- {old:?}\n+ {line:?}", n + 1),
        }
    }
    "the shipped page has more lines".into()
}

/// Each command the binary lists, with its description and every option's
/// name and text as its `--help` prints them, is in the shipped page; and
/// the page has no command the binary lacks.
#[test]
fn every_command_s_help_is_in_the_man_page() {
    let roff = std::fs::read_to_string(checked_in()).expect("dist/dock6.8");
    let page = plain(&roff);
    let listed = commands_in_help();
    assert!(
        listed.len() >= 7,
        "`dock6 --help` lists commands: {listed:?}"
    );
    let in_page: Vec<String> = roff
        .lines()
        .filter_map(|l| l.strip_prefix(".SS \"dock6 "))
        .map(|l| l.trim_end_matches('"').to_string())
        .collect();
    assert_eq!(in_page, listed, "the page's commands are the binary's");
    for command in &listed {
        let help = help_of(&[command.as_str(), "--help"]);
        let (description, options) = parse_help(&help);
        assert!(
            page.contains(&description),
            "`dock6 {command} --help` says {description:?}, the man page does not"
        );
        assert!(!options.is_empty(), "`dock6 {command} --help` has options");
        for (flag, text) in options {
            assert!(
                page.contains(&format!("{flag} {text}")) || page.contains(&text),
                "`dock6 {command} {flag}`: {text:?} is not in the man page"
            );
            assert!(page.contains(&flag), "{flag} of {command} not in the page");
        }
    }
    // The control: a description the binary does not have is not found.
    assert!(!page.contains("Remove everything dock6 made, sysctls included"));
}

/// The commands `dock6 --help` lists (clap's own `help` left out), checked
/// against the definition the page is generated from.
fn commands_in_help() -> Vec<String> {
    let help = help_of(&["--help"]);
    let listed: Vec<String> = help
        .split("Commands:\n")
        .nth(1)
        .expect("`dock6 --help` has a Commands: list")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    let defined: Vec<String> = dock6::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(listed, defined);
    listed
}

fn help_of(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dock6"))
        .args(args)
        .output()
        .expect("run dock6");
    assert!(out.status.success(), "dock6 {args:?} failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The description (what comes before `Usage:`) and each option as
/// (`--name`, its text), whitespace collapsed.
fn parse_help(help: &str) -> (String, Vec<(String, String)>) {
    let (description, rest) = help.split_once("\nUsage:").expect("a Usage: line");
    let mut options: Vec<(String, String)> = Vec::new();
    let listing = rest.split_once("Options:\n").map(|(_, o)| o).unwrap_or("");
    for line in listing.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            let flag = words
                .iter()
                .find(|w| w.starts_with("--"))
                .expect("every option has a long name")
                .trim_end_matches(',')
                .to_string();
            let text_start = words
                .iter()
                .position(|w| !(w.starts_with('-') || w.starts_with('<')))
                .unwrap_or(words.len());
            options.push((flag, words[text_start..].join(" ")));
        } else if let Some((_, text)) = options.last_mut() {
            text.push(' ');
            text.push_str(&collapse(trimmed));
        }
    }
    for (_, text) in &mut options {
        *text = collapse(text);
    }
    (collapse(description), options)
}

/// The page's text without roff: control lines dropped (a subsection's
/// title kept), font changes removed, escapes as the characters they are.
fn plain(roff: &str) -> String {
    let text: Vec<String> = roff
        .lines()
        .filter_map(|line| match line.strip_prefix('.') {
            Some(control) => control
                .strip_prefix("SS ")
                .map(|title| title.trim_matches('"').to_string()),
            None => Some(line.to_string()),
        })
        .map(|line| {
            ["\\fB", "\\fI", "\\fR", "\\fP", "\\&"]
                .iter()
                .fold(line, |l, font| l.replace(font, ""))
                .replace("\\-", "-")
                .replace("\\*(Aq", "'")
                .replace("\\e", "\\")
        })
        .collect();
    collapse(&text.join(" "))
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
