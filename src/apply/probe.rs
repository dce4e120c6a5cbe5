//! Whether this kernel takes dock6's table (nf_tables with NAT, masquerade,
//! sets, maps and concatenations): loaded into a network namespace of a
//! thread of its own, which dies with the thread, so nothing on the host is
//! touched. For `dock6 check`.

use crate::nft::Table;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot make a throwaway network namespace to try the table in: {0}")]
    Namespace(#[source] std::io::Error),
    #[error("{0}")]
    Refused(String),
    #[error("the probe thread died")]
    Thread,
}

/// Loads `table` in a throwaway network namespace; `Refused` names what
/// the kernel would not take.
pub fn kernel_takes(table: &Table) -> Result<(), ProbeError> {
    let table = table.clone();
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET moves only this thread, which
        // was made for the probe and touches nothing else; it takes no
        // pointers.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(ProbeError::Namespace(std::io::Error::last_os_error()));
        }
        super::nftables::replace_table(&table).map_err(|e| ProbeError::Refused(e.to_string()))
    })
    .join()
    .map_err(|_| ProbeError::Thread)?
}
