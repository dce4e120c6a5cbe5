//! One nftables transaction: a batch (begin, messages, end) in one buffer,
//! committed through this thread's nfnetlink socket, with each message's
//! sequence number mapped to what it describes so that a kernel error names
//! the object that failed (rule text, set, element).
//!
//! Set elements are written here as netlink attributes, straight from their
//! values into the batch buffer: a whole-table replace at 10,000 containers
//! carries some 200,000 of them, and building one libnftnl object each (an
//! allocation and several copies) was most of the encode.

use std::collections::HashMap;

use super::encode::{DATA_MAX, ValueBytes};
use super::ffi::{self, Msg, Scratch};
use super::{NftError, What};
use crate::apply::nfnetlink::codec::{
    self, MsgWriter, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFPROTO_INET,
    NFPROTO_UNSPEC, NLM_F_ACK, NLM_F_REQUEST,
};
use crate::apply::nfnetlink::{next_seq, with_conn};

/// Upper bound of the bytes of one element message: its elements nest
/// carries a u16 length, so it stays below 64 KiB.
const ELEMS_PER_MSG_BYTES: usize = ffi::MSG_MAX;
/// Upper bound of one element's attributes: the element nest, the key nest
/// and value, the data nest and value (4-byte headers, values ≤ DATA_MAX).
const ELEM_MAX_BYTES: usize = 4 + (4 + 4 + DATA_MAX) * 2;

// NFTA_SET_ELEM_LIST_*, NFTA_SET_ELEM_*, NFTA_LIST_ELEM, NFTA_DATA_VALUE
// (linux/netfilter/nf_tables.h).
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
/// NFNL_BATCH_GENID: the batch applies only at this ruleset generation.
const NFNL_BATCH_GENID: u16 = 1;

/// An element to write: its key and, for an add to a map, its data.
pub(super) type ElemValues = (ValueBytes, Option<ValueBytes>);

/// A batch being built: one contiguous buffer, begin … end.
pub(super) struct Batch {
    begin_seq: u32,
    buf: Vec<u8>,
    scratch: Scratch,
    next_seq: u32,
    entries: Vec<(u32, What)>,
}

/// `NFNL_MSG_BATCH_BEGIN` / `_END`: no family, the subsystem as resource id;
/// a begin with `generation` is refused (ERESTART) unless the ruleset is
/// still at that generation.
fn batch_marker(buf: &mut Vec<u8>, ty: u16, seq: u32, generation: Option<u32>) {
    let res_id = u16::from(NFNL_SUBSYS_NFTABLES);
    let mut w = MsgWriter::begin(buf, ty, NLM_F_REQUEST, seq, NFPROTO_UNSPEC, res_id);
    if let Some(id) = generation {
        w.put(NFNL_BATCH_GENID, &id.to_be_bytes());
    }
    w.finish();
}

impl Batch {
    pub(super) fn new(expected_messages: usize) -> Batch {
        Batch::at_generation(expected_messages, None)
    }

    /// A batch the kernel applies only if the ruleset is still at
    /// `generation` (else the whole batch fails with ERESTART, nothing
    /// changed): for a batch built from what a dump showed.
    pub(super) fn at_generation(expected_messages: usize, generation: Option<u32>) -> Batch {
        let base = next_seq(expected_messages as u32 + 2);
        let mut buf = Vec::with_capacity(4096);
        batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, base, generation);
        Batch {
            begin_seq: base,
            buf,
            scratch: Scratch::new(),
            next_seq: base.wrapping_add(1),
            entries: Vec::new(),
        }
    }

    /// Appends one message (asking for an ack) standing for `what`.
    pub(super) fn push(
        &mut self,
        ty: u16,
        flags: u16,
        msg: &Msg<'_>,
        what: What,
    ) -> Result<(), NftError> {
        let seq = self.next_seq;
        ffi::build(
            &mut self.scratch,
            ty,
            flags | NLM_F_ACK,
            seq,
            msg,
            &mut self.buf,
        )
        .map_err(|e| NftError::Encode {
            object: describe(&what, None, &|_, _| None),
            reason: e.to_string(),
        })?;
        self.entries.push((seq, what));
        self.next_seq = seq.wrapping_add(1);
        Ok(())
    }

    /// Appends one message (asking for an ack) whose attributes `fill`
    /// writes, standing for `what`: for messages libnftnl has no object for
    /// (flushes).
    pub(super) fn push_attrs(
        &mut self,
        ty: u16,
        flags: u16,
        what: What,
        fill: impl FnOnce(&mut MsgWriter<'_>),
    ) {
        let seq = self.next_seq;
        let msg_type = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | ty;
        let flags = NLM_F_REQUEST | flags | NLM_F_ACK;
        let mut w = MsgWriter::begin(&mut self.buf, msg_type, flags, seq, NFPROTO_INET, 0);
        fill(&mut w);
        w.finish();
        self.entries.push((seq, what));
        self.next_seq = seq.wrapping_add(1);
    }

    /// Whether no message was added (begin only).
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes encoded so far.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Ends the batch, sends it and turns the first failure into an error.
    /// `element(set, i)` names element `i` of `set` for the error.
    pub(super) fn commit(
        mut self,
        element: &dyn Fn(&str, usize) -> Option<String>,
    ) -> Result<(), NftError> {
        batch_marker(&mut self.buf, NFNL_MSG_BATCH_END, self.next_seq, None);
        let seqs: Vec<u32> = self.entries.iter().map(|(s, _)| *s).collect();
        let acks = with_conn(|conn| conn.transact(&self.buf, self.begin_seq, &seqs))?;
        let mut errors: Vec<&codec::Ack> = acks.iter().filter(|a| a.errno != 0).collect();
        // Batch order is sequence order (seqs may wrap: compare by position).
        let pos: HashMap<u32, usize> = seqs.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        errors.sort_by_key(|a| pos.get(&a.seq).copied().unwrap_or(usize::MAX));
        let Some(first) = errors.first() else {
            if acks.len() < seqs.len() {
                return Err(NftError::Protocol(format!(
                    "{} of {} acknowledgements missing",
                    seqs.len() - acks.len(),
                    seqs.len()
                )));
            }
            return Ok(());
        };
        let by_seq: HashMap<u32, &What> = self.entries.iter().map(|(s, w)| (*s, w)).collect();
        let object = match by_seq.get(&first.seq) {
            Some(w) => describe(w, first.offset, element),
            None => "batch".to_string(),
        };
        Err(NftError::Kernel {
            object,
            errno: first.errno,
            message: first.message.clone().filter(|m| !m.is_empty()),
            later_errors: errors.len() - 1,
        })
    }
}

/// Names what a message stood for; for elements, the one the kernel's
/// attribute offset points at.
fn describe(
    what: &What,
    offset: Option<u32>,
    element: &dyn Fn(&str, usize) -> Option<String>,
) -> String {
    match what {
        What::Text(t) => t.clone(),
        What::Elems { set, elements } => {
            let name =
                |index: Option<usize>| match index.and_then(|i| element(set, i).map(|e| (i, e))) {
                    Some((_, e)) => format!("element {e} of set {set}"),
                    None => match index {
                        Some(i) => format!("element #{i} of set {set}"),
                        None => format!("an element of set {set} that was not planned"),
                    },
                };
            // The kernel points at the failing element's attribute; with
            // no pointer (e.g. the set itself is missing) name the chunk.
            let hit = offset.and_then(|o| elements.iter().rposition(|(start, _)| *start <= o));
            match (hit, elements.as_slice()) {
                (Some(i), _) => name(elements[i].1),
                (None, [(_, one)]) => name(*one),
                (None, all) => format!(
                    "{} elements of set {set} (starting with {})",
                    all.len(),
                    name(all.first().and_then(|(_, i)| *i))
                ),
            }
        }
    }
}

/// Where element messages go: the set, and its id if created in the batch.
pub(super) struct ElemTarget<'a> {
    pub table: &'a str,
    pub set: &'a str,
    pub set_id: Option<u32>,
}

/// An element to write, with the index the caller names it by in errors
/// (none for one only the kernel had).
pub(super) type IndexedElem = (Option<usize>, ElemValues);

/// Adds the elements of one set (or one run of changes) to `batch`, in
/// messages of at most [`ELEMS_PER_MSG_BYTES`].
pub(super) fn push_elements(
    batch: &mut Batch,
    (ty, flags): (u16, u16),
    target: &ElemTarget<'_>,
    elems: impl Iterator<Item = Result<IndexedElem, NftError>>,
) -> Result<(), NftError> {
    let mut elems = elems.peekable();
    while elems.peek().is_some() {
        let seq = batch.next_seq;
        let elements = element_message(&mut batch.buf, (ty, flags, seq), target, &mut elems)?;
        let what = What::Elems {
            set: target.set.to_string(),
            elements,
        };
        batch.entries.push((seq, what));
        batch.next_seq = seq.wrapping_add(1);
    }
    Ok(())
}

/// Appends one NEWSETELEM / DELSETELEM message with as many of `elems` as
/// fit (at least one); returns, for each element it took, the offset of its
/// nest from the message start (the kernel's error points at one) and its
/// index.
fn element_message(
    buf: &mut Vec<u8>,
    (ty, flags, seq): (u16, u16, u32),
    target: &ElemTarget<'_>,
    elems: &mut std::iter::Peekable<impl Iterator<Item = Result<IndexedElem, NftError>>>,
) -> Result<Vec<(u32, Option<usize>)>, NftError> {
    let msg_type = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | ty;
    let flags = NLM_F_REQUEST | flags | NLM_F_ACK;
    let mut w = MsgWriter::begin(buf, msg_type, flags, seq, NFPROTO_INET, 0);
    w.put_str(NFTA_SET_ELEM_LIST_TABLE, target.table)
        .put_str(NFTA_SET_ELEM_LIST_SET, target.set);
    if let Some(id) = target.set_id {
        w.put(NFTA_SET_ELEM_LIST_SET_ID, &id.to_be_bytes());
    }
    let mut taken = Vec::new();
    let mut failed = None;
    w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
        while taken.is_empty() || w.len() + ELEM_MAX_BYTES <= ELEMS_PER_MSG_BYTES {
            let (index, (key, data)) = match elems.next() {
                Some(Ok(elem)) => elem,
                Some(Err(e)) => {
                    failed = Some(e);
                    return;
                }
                None => return,
            };
            taken.push((w.len() as u32, index));
            w.nest(NFTA_LIST_ELEM, |w| {
                w.nest(NFTA_SET_ELEM_KEY, |w| {
                    w.put(NFTA_DATA_VALUE, key.as_slice());
                });
                if let Some(data) = &data {
                    w.nest(NFTA_SET_ELEM_DATA, |w| {
                        w.put(NFTA_DATA_VALUE, data.as_slice());
                    });
                }
            });
        }
    });
    w.finish();
    match failed {
        Some(e) => Err(e),
        None => Ok(taken),
    }
}
