//! The `dock6.expose` and `dock6.mode` label parsers: no panic, and what
//! they accept is what the label documents.

#![no_main]

use dock6::plan::{Expose, Mode, parse_expose};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_expose(text) {
        Ok(Expose::Sealed) => assert_eq!(text.trim(), "false"),
        Ok(Expose::Default) => assert_eq!(text.trim(), "true"),
        Ok(Expose::Ports(ports)) => {
            assert!(!ports.is_empty(), "{text:?}: an empty port list");
            assert!(
                ports.windows(2).all(|w| w[0] < w[1]),
                "{text:?}: ports not sorted and unique: {ports:?}"
            );
            assert!(ports.iter().all(|(_, p)| *p > 0), "{text:?}: port 0");
            // The canonical form parses back to the same list.
            let canonical: Vec<String> = ports
                .iter()
                .map(|(proto, port)| format!("{port}/{}", proto.name()))
                .collect();
            assert_eq!(
                parse_expose(&canonical.join(",")),
                Ok(Expose::Ports(ports.clone())),
                "{text:?}"
            );
        }
        Err(message) => assert!(!message.is_empty()),
    }
    if let Some(mode) = Mode::parse(text) {
        assert_eq!(mode.name(), text.trim(), "{text:?}");
        assert_eq!(Mode::parse(mode.name()), Some(mode));
    }
});
