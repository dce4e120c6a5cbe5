//! Set and map element changes, in one batch.

use super::batch::{Batch, ElemTarget, ElemValues, push_elements};
use super::committed;
use super::encode;
use super::{EncodeError, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NftError};
use crate::apply::nfnetlink::codec::{ERESTART, NLM_F_CREATE, NLM_F_EXCL};
use crate::nft::{Element, ElementChange};

/// Adds and removes set/map elements of `table inet <table>` in one batch.
///
/// The set's types are read from the kernel side's point of view: the key
/// (and data) layout follows the element's values. Adds use
/// `NLM_F_CREATE | NLM_F_EXCL`: adding an element that is already present
/// fails with EEXIST, and removing an absent one with ENOENT; either aborts
/// the whole batch (nothing changes) and the error names the element.
///
/// When dock6's last commit to the table is still current (`committed.rs`),
/// the batch is sent at its generation and the record follows the changes,
/// so that a later whole-table replace can send differences only; if
/// anyone committed since, the kernel refuses that batch and it is sent
/// again without.
pub fn update_elements(table: &str, changes: &[ElementChange]) -> Result<(), NftError> {
    if changes.is_empty() {
        return Ok(());
    }
    let named = |_: &str, i: usize| changes.get(i).map(|c| change_element(c).to_string());
    if let Some(known) = committed::take(table) {
        let result = changes_batch(table, changes, Some(known.generation))?.commit(&named);
        match result {
            Ok(()) => {
                let now = known.advanced();
                committed::store(table, now.generation, now.rules);
                return Ok(());
            }
            Err(e) if e.errno() == Some(ERESTART) => {}
            Err(e) => return Err(e),
        }
    }
    changes_batch(table, changes, None)?.commit(&named)
}

/// The batch of [`update_elements`], applied only at `generation` if given.
fn changes_batch(
    table: &str,
    changes: &[ElementChange],
    generation: Option<u32>,
) -> Result<Batch, NftError> {
    let mut b = Batch::at_generation(changes.len(), generation);
    push_changes(&mut b, table, changes)?;
    Ok(b)
}

/// Appends `changes` to `b`: adds with `NLM_F_EXCL`, so that adding an
/// element already there fails (EEXIST) as removing an absent one does
/// (ENOENT), and either aborts the whole batch.
pub(super) fn push_changes(
    b: &mut Batch,
    table: &str,
    changes: &[ElementChange],
) -> Result<(), NftError> {
    // Consecutive changes of the same kind on the same set share messages.
    let mut i = 0;
    while i < changes.len() {
        let (add, set) = change_parts(&changes[i]);
        let run = changes[i..]
            .iter()
            .take_while(|c| change_parts(c) == (add, set))
            .count();
        let elems = changes[i..i + run].iter().enumerate().map(|(k, c)| {
            change_values(add, set, change_element(c)).map(|values| (Some(i + k), values))
        });
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        let target = ElemTarget {
            table,
            set,
            set_id: None,
        };
        push_elements(b, (ty, flags), &target, elems)?;
        i += run;
    }
    Ok(())
}

/// The key (and, for an add to a map, the data) of one changed element,
/// typed by its own values (the kernel checks them against the set).
fn change_values(add: bool, set: &str, e: &Element) -> Result<ElemValues, NftError> {
    let named = |err: EncodeError| NftError::Encode {
        object: format!("element {e} of set {set}"),
        reason: err.to_string(),
    };
    let key = encode::encode_values(&e.key, None, "element key").map_err(named)?;
    let data = if add && !e.data.is_empty() {
        let data = encode::encode_values(&e.data, None, "element data");
        Some(data.map_err(named)?)
    } else {
        None
    };
    Ok((key, data))
}

fn change_parts(c: &ElementChange) -> (bool, &str) {
    match c {
        ElementChange::Add { set, .. } => (true, set.as_str()),
        ElementChange::Remove { set, .. } => (false, set.as_str()),
    }
}

pub(super) fn change_element(c: &ElementChange) -> &Element {
    match c {
        ElementChange::Add { element, .. } | ElementChange::Remove { element, .. } => element,
    }
}
