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
///
/// Each message takes its sequence number from the process-wide counter as
/// it is added, however many the batch ends up holding: no two batches
/// share a number, so a reply left on the socket by an earlier batch can
/// never pass for one of this batch's.
pub(super) struct Batch {
    begin_seq: u32,
    buf: Vec<u8>,
    scratch: Scratch,
    /// The number the next message (or the end marker) gets, already taken
    /// from the counter.
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
        let begin_seq = next_seq(1);
        let mut buf = Vec::with_capacity(4096);
        batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, begin_seq, generation);
        Batch {
            begin_seq,
            buf,
            scratch: Scratch::new(),
            next_seq: next_seq(1),
            entries: Vec::with_capacity(expected_messages),
        }
    }

    /// The sequence number of the message being added; the one after it is
    /// taken from the counter.
    fn advance(&mut self) -> u32 {
        std::mem::replace(&mut self.next_seq, next_seq(1))
    }

    /// Appends one message (asking for an ack) standing for `what`.
    pub(super) fn push(
        &mut self,
        ty: u16,
        flags: u16,
        msg: &Msg<'_>,
        what: What,
    ) -> Result<(), NftError> {
        let seq = self.advance();
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
        let seq = self.advance();
        let msg_type = u16::from(NFNL_SUBSYS_NFTABLES) << 8 | ty;
        let flags = NLM_F_REQUEST | flags | NLM_F_ACK;
        let mut w = MsgWriter::begin(&mut self.buf, msg_type, flags, seq, NFPROTO_INET, 0);
        fill(&mut w);
        w.finish();
        self.entries.push((seq, what));
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
        self,
        element: &dyn Fn(&str, usize) -> Option<String>,
    ) -> Result<(), NftError> {
        self.send(true, element)
    }

    /// Sends the batch without its end marker: the kernel checks every
    /// message as it would for a commit, then aborts the transaction (what
    /// `nft --check` does), so nothing changes whatever the batch holds.
    pub(super) fn validate(
        self,
        element: &dyn Fn(&str, usize) -> Option<String>,
    ) -> Result<(), NftError> {
        self.send(false, element)
    }

    fn send(
        mut self,
        end: bool,
        element: &dyn Fn(&str, usize) -> Option<String>,
    ) -> Result<(), NftError> {
        if end {
            batch_marker(&mut self.buf, NFNL_MSG_BATCH_END, self.next_seq, None);
        }
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
        let seq = batch.advance();
        let elements = element_message(&mut batch.buf, (ty, flags, seq), target, &mut elems)?;
        let what = What::Elems {
            set: target.set.to_string(),
            elements,
        };
        batch.entries.push((seq, what));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::nfnetlink::codec::{ENOENT, NLM_F_CREATE};
    use crate::apply::nfnetlink::{Conn, enter_fresh_netns};
    use crate::apply::nftables::{NFT_MSG_DELTABLE, NFT_MSG_NEWSET, NFT_MSG_NEWTABLE};

    // linux/netfilter/nf_tables.h
    const NFTA_TABLE_NAME: u16 = 1;
    const NFTA_SET_TABLE: u16 = 1;
    const NFTA_SET_NAME: u16 = 2;
    const NFTA_SET_FLAGS: u16 = 3;
    const NFTA_SET_KEY_TYPE: u16 = 4;
    const NFTA_SET_KEY_LEN: u16 = 5;
    const NFTA_SET_ID: u16 = 10;
    const NFT_SET_ANONYMOUS: u32 = 0x1;
    const NFT_SET_CONSTANT: u32 = 0x2;

    fn seqs_of(batch: &Batch) -> Vec<u32> {
        std::iter::once(batch.begin_seq)
            .chain(batch.entries.iter().map(|(s, _)| *s))
            .collect()
    }

    fn add_table(batch: &mut Batch, name: &str) {
        let what = What::Text(format!("table inet {name}"));
        batch.push_attrs(NFT_MSG_NEWTABLE, NLM_F_CREATE, what, |w| {
            w.put_str(NFTA_TABLE_NAME, name);
        });
    }

    /// Refused by the kernel on its own (ENOENT): the batch fails at
    /// that message.
    fn delete_missing_table(batch: &mut Batch) {
        let what = What::Text("delete table inet missing".into());
        batch.push_attrs(NFT_MSG_DELTABLE, 0, what, |w| {
            w.put_str(NFTA_TABLE_NAME, "missing");
        });
    }

    /// An anonymous set no rule binds: each message is taken, and the
    /// kernel refuses the batch as a whole when it commits it (EINVAL),
    /// after which it still acknowledges every message as done.
    fn unbound_anonymous_set(batch: &mut Batch, table: &str) {
        let what = What::Text("an anonymous set no rule uses".into());
        batch.push_attrs(NFT_MSG_NEWSET, NLM_F_CREATE, what, |w| {
            w.put_str(NFTA_SET_TABLE, table)
                .put_str(NFTA_SET_NAME, "__set%d")
                .put(
                    NFTA_SET_FLAGS,
                    &(NFT_SET_ANONYMOUS | NFT_SET_CONSTANT).to_be_bytes(),
                )
                .put(NFTA_SET_KEY_TYPE, &7u32.to_be_bytes())
                .put(NFTA_SET_KEY_LEN, &4u32.to_be_bytes())
                .put(NFTA_SET_ID, &1u32.to_be_bytes());
        });
    }

    #[test]
    fn a_batch_that_outgrows_its_estimate_shares_no_number_with_the_next() {
        // Estimated at one message, holding five (as a set with more
        // elements than one message carries does).
        let mut first = Batch::new(1);
        for i in 0..5 {
            add_table(&mut first, &format!("t{i}"));
        }
        let mut second = Batch::new(1);
        add_table(&mut second, "t");
        let first_seqs = seqs_of(&first);
        let shared: Vec<u32> = seqs_of(&second)
            .into_iter()
            .filter(|s| first_seqs.contains(s))
            .collect();
        assert!(
            shared.is_empty(),
            "sequence numbers {shared:?} are in both batches (first {first_seqs:?}, second {:?})",
            seqs_of(&second)
        );
    }

    /// Whether kernel tests can run; under CI (`CI=true`) they must.
    fn require_root(test: &str) -> bool {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if !root && std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: cannot run: needs root, and CI=true makes kernel tests mandatory");
        }
        if !root {
            eprintln!("SKIPPED {test}: needs root");
        }
        root
    }

    /// Runs `f` on a thread of its own in a fresh network namespace.
    fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            enter_fresh_netns().expect("unshare(CLONE_NEWNET)");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A batch the kernel refuses whole at commit leaves acknowledgements
    /// on the socket; a batch sent after it on the same thread whose
    /// numbers overlap must not take them for its own: its refused message
    /// must still make it fail.
    #[test]
    fn a_batch_is_not_answered_by_the_acks_of_a_failed_one() {
        if !require_root("a_batch_is_not_answered_by_the_acks_of_a_failed_one") {
            return;
        }
        in_fresh_netns(|| {
            let mut setup = Batch::new(1);
            add_table(&mut setup, "t");
            setup.commit(&|_, _| None).expect("table t added");

            // Built before the failing batch, sent after it; estimated at
            // one message, it holds six: one refused by the kernel, where
            // its numbers meet the failing batch's message if they do.
            let mut later = Batch::new(1);
            let mut failing = Batch::new(1);
            unbound_anonymous_set(&mut failing, "t");
            let failing_messages: Vec<u32> = failing.entries.iter().map(|(s, _)| *s).collect();
            let mut refused_one = false;
            for i in 0..6 {
                let meets = failing_messages.contains(&later.next_seq);
                if meets || (i == 5 && !refused_one) {
                    delete_missing_table(&mut later);
                    refused_one = true;
                } else {
                    add_table(&mut later, "t");
                }
            }

            let e = failing
                .commit(&|_, _| None)
                .expect_err("an unbound anonymous set is refused at commit");
            assert!(e.errno().is_some(), "the kernel refused it: {e}");
            let e = later
                .commit(&|_, _| None)
                .expect_err("deleting a missing table fails the batch (reported as done instead)");
            assert_eq!(e.errno(), Some(ENOENT), "{e}");
        });
    }

    /// Sends `batch` on `conn` itself (not the thread's socket).
    fn send_on(conn: &Conn, mut batch: Batch) -> Vec<codec::Ack> {
        batch_marker(&mut batch.buf, NFNL_MSG_BATCH_END, batch.next_seq, None);
        let seqs: Vec<u32> = batch.entries.iter().map(|(s, _)| *s).collect();
        conn.transact(&batch.buf, batch.begin_seq, &seqs)
            .expect("the kernel answers")
    }

    #[test]
    fn a_socket_that_carried_a_refused_batch_is_spent() {
        if !require_root("a_socket_that_carried_a_refused_batch_is_spent") {
            return;
        }
        in_fresh_netns(|| {
            let conn = Conn::open().expect("a netfilter socket");
            let mut taken = Batch::new(1);
            add_table(&mut taken, "t");
            let acks = send_on(&conn, taken);
            assert!(acks.iter().all(|a| a.errno == 0), "{acks:?}");
            assert!(
                !conn.is_spent(),
                "a batch that went in leaves the socket usable"
            );

            let mut refused = Batch::new(1);
            unbound_anonymous_set(&mut refused, "t");
            let acks = send_on(&conn, refused);
            assert!(acks.iter().any(|a| a.errno != 0), "refused: {acks:?}");
            assert!(conn.is_spent(), "a refused batch may leave replies queued");
        });
    }
}
