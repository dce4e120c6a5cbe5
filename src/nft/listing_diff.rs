//! The difference between two `nft list table` texts, as `+`/`-` lines
//! (`dock6 render --diff`). Set elements are compared one per line, sorted:
//! the kernel lists a set in its own order, which depends on how the
//! elements were added, not on what they are.

use similar::TextDiff;

/// A unified diff from `kernel` to `planned`; `None` when they are the same.
pub fn listing_diff(kernel: &str, planned: &str) -> Option<String> {
    let (old, new) = (normalize(kernel), normalize(planned));
    if old == new {
        return None;
    }
    let diff = TextDiff::from_lines(&old, &new);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header("kernel: table inet dock6", "plan: table inet dock6")
            .to_string(),
    )
}

/// `elements = { a, b,\n c }` becomes one `element X` line per element,
/// sorted; every other line stays as it is.
fn normalize(listing: &str) -> String {
    let mut out = String::new();
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(first) = trimmed.strip_prefix("elements = {") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        let mut body = first.to_string();
        while !body.trim_end().ends_with('}') {
            match lines.next() {
                Some(next) => {
                    body.push(' ');
                    body.push_str(next.trim());
                }
                None => break,
            }
        }
        let body = body.trim_end().trim_end_matches('}');
        let mut elements: Vec<&str> = body
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        elements.sort_unstable();
        for element in elements {
            out.push_str(&format!("{indent}element {element}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: &str = "table inet dock6 {\n\tset s {\n\t\ttype ipv6_addr\n\t\telements = { fd00::3,\n\t\t\t     fd00::2 }\n\t}\n}\n";

    #[test]
    fn element_order_is_no_difference() {
        let planned = KERNEL.replace("fd00::3,\n\t\t\t     fd00::2", "fd00::2, fd00::3");
        assert_eq!(listing_diff(KERNEL, &planned), None);
    }

    #[test]
    fn a_changed_element_shows_as_minus_and_plus() {
        let planned = KERNEL.replace("fd00::3", "fd00::4");
        let diff = listing_diff(KERNEL, &planned).expect("they differ");
        assert!(diff.contains("-\t\telement fd00::3\n"), "{diff}");
        assert!(diff.contains("+\t\telement fd00::4\n"), "{diff}");
        assert!(diff.contains(" \t\telement fd00::2\n"), "{diff}");
    }

    #[test]
    fn no_table_in_the_kernel_shows_every_planned_line_added() {
        let diff = listing_diff("", KERNEL).expect("they differ");
        assert!(diff.contains("+table inet dock6 {\n"), "{diff}");
        assert!(
            !diff
                .lines()
                .any(|l| l.starts_with('-') && !l.starts_with("---"))
        );
    }
}
