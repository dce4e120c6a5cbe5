//! Running commands: the lab's plumbing (argv, never a shell; stdout on
//! success, an error with stderr otherwise).

use std::process::Command;

use anyhow::Result;

pub(crate) use dock6_lab::output;

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}
