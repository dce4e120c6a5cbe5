//! One nftables transaction: a batch (begin, messages, end) in one buffer,
//! committed through this thread's nfnetlink socket, with each message's
//! sequence number mapped to what it describes so that a kernel error names
//! the object that failed (rule text, set, element).

use std::collections::HashMap;

use super::ffi::{self, ElemBytes, Msg, Scratch};
use super::{NftError, What};
use crate::apply::nfnetlink::codec::{
    self, MsgWriter, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
    NFPROTO_UNSPEC, NLM_F_ACK, NLM_F_REQUEST,
};
use crate::apply::nfnetlink::{next_seq, with_conn};

/// Upper bound of the bytes of one element chunk (one message).
const ELEMS_PER_MSG_BYTES: usize = 32 * 1024;

/// A batch being built: one contiguous buffer, begin … end.
pub(super) struct Batch {
    begin_seq: u32,
    buf: Vec<u8>,
    scratch: Scratch,
    next_seq: u32,
    entries: Vec<(u32, What)>,
}

/// `NFNL_MSG_BATCH_BEGIN` / `_END`: no family, the subsystem as resource id.
fn batch_marker(buf: &mut Vec<u8>, ty: u16, seq: u32) {
    let res_id = u16::from(NFNL_SUBSYS_NFTABLES);
    MsgWriter::begin(buf, ty, NLM_F_REQUEST, seq, NFPROTO_UNSPEC, res_id).finish();
}

impl Batch {
    pub(super) fn new(expected_messages: usize) -> Batch {
        let base = next_seq(expected_messages as u32 + 2);
        let mut buf = Vec::with_capacity(4096);
        batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, base);
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
        let start = self.buf.len();
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
        let what = match what {
            What::Elems { set, first, .. } => What::Elems {
                set,
                first,
                offsets: element_offsets(&self.buf[start..]),
            },
            w => w,
        };
        self.entries.push((seq, what));
        self.next_seq = seq.wrapping_add(1);
        Ok(())
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
        batch_marker(&mut self.buf, NFNL_MSG_BATCH_END, self.next_seq);
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
        What::Elems {
            set,
            first,
            offsets,
        } => {
            let name = |i: usize| match element(set, i) {
                Some(e) => format!("element {e} of set {set}"),
                None => format!("element #{i} of set {set}"),
            };
            // The kernel points at the failing element's attribute; with
            // no pointer (e.g. the set itself is missing) name the chunk.
            let hit = offset.and_then(|o| offsets.iter().rposition(|start| *start <= o));
            match (hit, offsets.len()) {
                (Some(i), _) => name(first + i),
                (None, 1) => name(*first),
                (None, n) => {
                    format!("{n} elements of set {set} (starting with {})", name(*first))
                }
            }
        }
    }
}

/// Offsets (from the message start) of each element nest in a NEWSETELEM /
/// DELSETELEM message.
fn element_offsets(msg: &[u8]) -> Vec<u32> {
    const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    const ATTRS: usize = codec::NLMSG_HDRLEN + codec::NFGENMSG_LEN;
    let attrs = codec::attrs(msg.get(ATTRS..).unwrap_or(&[]));
    attrs
        .filter(|list| list.kind == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|list| {
            let base = ATTRS + list.offset + 4;
            codec::attrs(list.payload).map(move |e| (base + e.offset) as u32)
        })
        .collect()
}

/// Where element messages go: the set, and its id if created in the batch.
pub(super) struct ElemTarget<'a> {
    pub table: &'a str,
    pub set: &'a str,
    pub set_id: Option<u32>,
}

/// Adds the elements of one set (or one run of changes) to `batch`, in
/// messages of at most [`ELEMS_PER_MSG_BYTES`].
pub(super) fn push_elements(
    batch: &mut Batch,
    (ty, flags): (u16, u16),
    target: &ElemTarget<'_>,
    elems: Vec<ElemBytes>,
    first_index: usize,
) -> Result<(), NftError> {
    let ElemTarget { table, set, set_id } = *target;
    let mut start = 0;
    while start < elems.len() {
        let end = chunk_end(&elems, start);
        let msg = Msg::Elems {
            table,
            set,
            set_id,
            elems: &elems[start..end],
        };
        let what = What::Elems {
            set: set.to_string(),
            first: first_index + start,
            offsets: vec![],
        };
        batch.push(ty, flags, &msg, what)?;
        start = end;
    }
    Ok(())
}

/// The end of the chunk starting at `start`: at least one element, then as
/// many as fit.
fn chunk_end(elems: &[ElemBytes], start: usize) -> usize {
    let mut end = start;
    let mut bytes = 0;
    while end < elems.len() {
        let (k, d) = &elems[end];
        let sz = ffi::ELEM_OVERHEAD + k.len() + d.as_ref().map_or(0, Vec::len);
        if end > start && bytes + sz > ELEMS_PER_MSG_BYTES {
            break;
        }
        bytes += sz;
        end += 1;
    }
    end
}
