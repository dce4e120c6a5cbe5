//! Whether this kernel takes dock6's table (nf_tables with NAT, masquerade,
//! sets, maps and concatenations), without changing anything: loaded into a
//! network namespace of a thread of its own, which dies with the thread; or,
//! where no namespace can be made (the shipped unit restricts namespaces and
//! keeps only CAP_NET_ADMIN and CAP_NET_RAW), checked in the current one by a
//! batch the kernel aborts after checking each message. For `dock6 check`,
//! and for `dock6 run` before it changes anything.

use crate::nft::Table;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Neither way was open: nothing is known about the kernel.
    #[error(
        "cannot try dock6's table: no throwaway network namespace ({namespace}), and no check in this one ({here})"
    )]
    CannotProbe {
        namespace: std::io::Error,
        here: String,
    },
    /// The kernel refused a part of the table; the text names it and why.
    #[error("{0}")]
    Refused(String),
    #[error("the probe thread died")]
    Thread,
}

/// How the kernel was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// The table was loaded in a throwaway network namespace.
    ThrowawayNamespace,
    /// The kernel checked the table in the current namespace and aborted the transaction.
    CheckedHere,
}

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Probed::ThrowawayNamespace => "loaded in a throwaway network namespace",
            Probed::CheckedHere => "checked by the kernel in this namespace, then aborted",
        })
    }
}

/// Loads `table` in a throwaway network namespace, else checks it in this
/// one; `Refused` names what the kernel would not take.
pub fn kernel_takes(table: &Table) -> Result<Probed, ProbeError> {
    let thrown_away = table.clone();
    let in_namespace = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET moves only this thread, which
        // was made for the probe and touches nothing else; it takes no
        // pointers.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(super::nftables::replace_table(&thrown_away))
    })
    .join()
    .map_err(|_| ProbeError::Thread)?;
    match in_namespace {
        Ok(loaded) => loaded
            .map(|()| Probed::ThrowawayNamespace)
            .map_err(|e| ProbeError::Refused(e.to_string())),
        Err(namespace) => check_here(table, namespace).map(|()| Probed::CheckedHere),
    }
}

/// The table under a name of its own, checked and aborted by the kernel.
fn check_here(table: &Table, namespace: std::io::Error) -> Result<(), ProbeError> {
    let mut probe = table.clone();
    probe.name = PROBE_TABLE.to_string();
    match super::nftables::validate_table(&probe) {
        Ok(()) => Ok(()),
        Err(e) if refusal(&e) => Err(ProbeError::Refused(e.to_string())),
        Err(e) => Err(ProbeError::CannotProbe {
            namespace,
            here: e.to_string(),
        }),
    }
}

/// The name the table is checked under in the current namespace.
const PROBE_TABLE: &str = "dock6_probe";

/// A refusal by the kernel of what the table holds, not of who asks.
fn refusal(e: &super::nftables::NftError) -> bool {
    e.errno()
        .is_some_and(|errno| errno != libc::EPERM && errno != libc::EACCES)
}

/// `uname -r` of the running kernel ("unknown" when unreadable).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// What `dock6 run` makes of the probe before it changes anything.
#[derive(Debug, PartialEq, Eq)]
pub enum StartVerdict {
    Takes(Probed),
    /// The probe could not run: the agent goes on (a refusal shows in its passes).
    Unknown(String),
}

/// The kernel refuses dock6's table: `dock6 run` stops before it changes
/// anything, naming the kernel and what it refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "kernel {release} does not take dock6's table: {refused}. dock6 needs nf_tables with NAT \
     (masquerade, DNAT), sets, maps and concatenations, and has changed nothing \
     (`dock6 check` lists the host's other problems)"
)]
pub struct KernelRefuses {
    pub release: String,
    pub refused: String,
}

pub fn start_verdict(
    probed: Result<Probed, ProbeError>,
    release: &str,
) -> Result<StartVerdict, KernelRefuses> {
    match probed {
        Ok(how) => Ok(StartVerdict::Takes(how)),
        Err(ProbeError::Refused(refused)) => Err(KernelRefuses {
            release: release.to_string(),
            refused,
        }),
        Err(e) => Ok(StartVerdict::Unknown(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_stops_the_start_naming_the_kernel_and_the_refused_rule() {
        let refused = "rule 1 of chain published: dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_addr: Operation not supported";
        let e = start_verdict(
            Err(ProbeError::Refused(refused.into())),
            "5.4.0-150-generic",
        )
        .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "kernel 5.4.0-150-generic does not take dock6's table: rule 1 of chain published:"
            ),
            "{text}"
        );
        assert!(text.contains("Operation not supported"), "{text}");
        assert!(text.contains("has changed nothing"), "{text}");
    }

    #[test]
    fn a_probe_that_cannot_run_lets_the_agent_start() {
        let cannot = ProbeError::CannotProbe {
            namespace: std::io::Error::from_raw_os_error(libc::EPERM),
            here: "nftables netlink socket: permission denied".into(),
        };
        let verdict = start_verdict(Err(cannot), "6.1.0-50-amd64").expect("not a refusal");
        assert!(
            matches!(verdict, StartVerdict::Unknown(ref why) if why.contains("no throwaway network namespace")),
            "{verdict:?}"
        );
        assert_eq!(
            start_verdict(Ok(Probed::CheckedHere), "6.1.0-50-amd64").expect("takes"),
            StartVerdict::Takes(Probed::CheckedHere)
        );
    }
}
