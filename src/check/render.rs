//! `dock6 check` as a person reads it.

use std::fmt::{self, Display, Formatter};

use super::Report;

impl Display for Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{:<8}{}: {}",
                finding.severity.name(),
                finding.id,
                finding.seen
            )?;
            writeln!(f, "        why: {}", finding.why)?;
            if let Some(fix) = &finding.fix {
                // A fix of several commands has one a line, under the first.
                writeln!(f, "        fix: {}", fix.replace('\n', "\n             "))?;
            }
        }
        let verdict = match self.errors {
            0 => "dock6 can run here",
            _ => "fix the errors before starting dock6",
        };
        writeln!(
            f,
            "\n{}, {}: {verdict}",
            count(self.errors, "error"),
            count(self.warnings, "warning")
        )
    }
}

/// `1 error`, `2 errors`.
fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Finding, Report, Severity};

    #[test]
    fn a_fix_of_several_commands_has_one_a_line_under_the_first() {
        let report = Report::new(vec![
            Finding::new("steps", Severity::Warning, "seen", "why").fix("first\nsecond"),
        ]);
        let text = report.to_string();
        assert!(
            text.contains("        fix: first\n             second\n"),
            "{text}"
        );
    }
}
