//! Values from outside the process (Docker's labels, names and options, a
//! config file) echoed into logs and notes: cut to a readable length, so a
//! 10,000-character label cannot flood the journal.

use std::borrow::Cow;

/// How many characters of an outside value a message shows.
pub const CLIP_CHARS: usize = 100;

/// `text` cut to [`CLIP_CHARS`] characters, marked with `…` when cut.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(CLIP_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// `text` clipped and quoted as Rust's `{:?}` quotes it (escapes included),
/// the form notes use for names and values.
pub fn quoted(text: &str) -> String {
    format!("{:?}", clip(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        assert_eq!(clip("web"), "web");
        let long = "é".repeat(300);
        let cut = clip(&long);
        assert_eq!(cut.chars().count(), CLIP_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
    }
}
