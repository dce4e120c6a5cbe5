//! dock6's nftables encoder: the IR ([`crate::nft`]) as netlink batches,
//! built with libnftnl (`nftnl-sys`) and sent over a libmnl socket.
//!
//! The encoding reproduces what `nft -f` sends for the IR's rendered text, so
//! `nft list table inet dock6` prints the same whichever way the table was
//! loaded (`tests/roundtrip.rs` proves it).
//!
//! * [`replace_table`]: one atomic batch — add table, delete table, add table
//!   (valid whether or not the table exists), chains, sets with their
//!   elements, rules.
//! * [`update_elements`]: set/map element adds and removes in one batch.
//! * [`delete_table`]: removes the table; `false` if there was none.
//!
//! Every message asks for an ack; the kernel reports every failing message,
//! and the error names the first failing object (rule text, set, element)
//! through a map from sequence number to description.
//!
//! libnftnl objects are not `Send`; this API is synchronous and builds and
//! frees them within each call. Callers on an async runtime should use
//! `spawn_blocking`.

mod docker_signature;
mod encode;
mod ffi;
mod netlink;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::nft::{ChainKind, Element, Hook, Table};

use encode::{element_bytes, rule_exprs, set_spec};
use ffi::{ChainHook, ElemBytes, Msg, Scratch};

pub use crate::nft::ElementChange;
pub use docker_signature::{
    DOCKER_BRIDGES_TABLE, DockerFirewall, chain_jumps_to, docker_ip6_firewall,
};

/// Why an nftables operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The kernel refused a message; `object` names what it described
    /// (e.g. `rule 3 of chain to_docker: ip6 daddr @sealed drop`). The
    /// whole batch was aborted: nothing changed.
    #[error("{object}: {}{}{}", strerror(*.errno), .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(), later(*.later_errors))]
    Kernel {
        object: String,
        errno: i32,
        message: Option<String>,
        later_errors: usize,
    },
    /// The IR cannot be expressed (names, lengths, types); nothing was sent.
    #[error("cannot encode {object}: {reason}")]
    Encode { object: String, reason: String },
    /// The batch went through but its outcome is unknown.
    #[error("nftables: {0}")]
    Protocol(String),
    #[error("nftables netlink socket: {0}")]
    Io(#[from] io::Error),
}

impl NftError {
    /// The kernel's errno, for [`NftError::Kernel`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn later(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" [{n} later message(s) of the batch failed too]"),
    }
}

/// Why something could not be encoded (without the object, added by the caller).
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl EncodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        EncodeError(reason.into())
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// nf_tables message types and netlink flags.
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const ENOENT: i32 = 2;

/// Upper bound of the bytes of one element chunk (one message).
const ELEMS_PER_MSG_BYTES: usize = 32 * 1024;

/// What a message in the batch stands for, to name it in errors.
enum What {
    Text(String),
    /// Elements `first..` of `set`, with each element's attribute offset in
    /// the message (the kernel reports the failing one's offset).
    Elems {
        set: String,
        first: usize,
        offsets: Vec<u32>,
    },
}

/// A batch being built: one contiguous buffer, begin … end.
struct Batch {
    begin_seq: u32,
    buf: Vec<u8>,
    scratch: Scratch,
    next_seq: u32,
    entries: Vec<(u32, What)>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn seq_base(messages: u32) -> u32 {
    let _ = SEQ.compare_exchange(
        0,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1)
            | 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    SEQ.fetch_add(messages.max(1), Ordering::Relaxed)
}

fn batch_marker(buf: &mut Vec<u8>, ty: u16, seq: u32) {
    buf.extend_from_slice(&20u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id = subsystem (big endian)
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
}

impl Batch {
    fn new(expected_messages: usize) -> Batch {
        let base = seq_base(expected_messages as u32 + 2);
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

    fn push(&mut self, ty: u16, flags: u16, msg: &Msg<'_>, what: What) -> Result<(), NftError> {
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
            object: self.describe_what(&what, None, &|_, _| None),
            reason: e.0,
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

    fn describe_what(
        &self,
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

    /// Ends the batch, sends it and turns the first failure into an error.
    fn commit(mut self, element: &dyn Fn(&str, usize) -> Option<String>) -> Result<(), NftError> {
        batch_marker(&mut self.buf, NFNL_MSG_BATCH_END, self.next_seq);
        let seqs: Vec<u32> = self.entries.iter().map(|(s, _)| *s).collect();
        let acks = with_conn(|conn| conn.transact(&self.buf, self.begin_seq, &seqs))?;
        let by_seq: HashMap<u32, &What> = self.entries.iter().map(|(s, w)| (*s, w)).collect();
        let mut errors: Vec<&netlink::Ack> = acks.iter().filter(|a| a.errno != 0).collect();
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
        let object = match by_seq.get(&first.seq) {
            Some(w) => self.describe_what(w, first.offset, element),
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

thread_local! {
    /// This thread's socket, with the network namespace it was opened in.
    /// Reused because closing a netfilter netlink socket costs the caller an
    /// RCU grace period (7–20 ms measured here) — more than a whole commit.
    static CONN: std::cell::RefCell<Option<Registered>> = const { std::cell::RefCell::new(None) };
}

/// The (network namespace, netlink port id) of every open socket dock6
/// commits through. The kernel stamps each commit's notifications with the
/// committing socket's port id, so this tells dock6's own commits from
/// others' whatever pid namespace dock6 runs in (pids are not comparable
/// across pid namespaces; port ids are unique within a network namespace).
static OWN_SOCKETS: std::sync::Mutex<std::collections::BTreeSet<(u64, u32)>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A socket whose port id is in [`OWN_SOCKETS`] for as long as it is open.
struct Registered {
    netns: u64,
    conn: netlink::Conn,
}

impl Registered {
    fn new(netns: u64, conn: netlink::Conn) -> Registered {
        if let Ok(mut own) = OWN_SOCKETS.lock() {
            own.insert((netns, conn.portid()));
        }
        Registered { netns, conn }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut own) = OWN_SOCKETS.lock() {
            own.remove(&(self.netns, self.conn.portid()));
        }
    }
}

/// Whether `portid` is one of dock6's open nftables sockets in the network
/// namespace `netns` (an nsfs inode, as `/proc/thread-self/ns/net` has it).
pub fn is_own_socket(netns: u64, portid: u32) -> bool {
    OWN_SOCKETS
        .lock()
        .map(|own| own.contains(&(netns, portid)))
        .unwrap_or(false)
}

/// The network namespace of the calling thread (its nsfs inode).
pub fn thread_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// Runs `f` with this thread's cached socket, opening one if there is none
/// or if the thread has moved to another network namespace since (a socket
/// stays in the namespace it was created in). A socket that saw an I/O
/// error is not kept. The socket is registered (see [`is_own_socket`])
/// before anything is sent through it.
fn with_conn<R>(f: impl FnOnce(&netlink::Conn) -> io::Result<R>) -> io::Result<R> {
    // Without /proc the namespace is unknown: 0 stands for it, on both sides.
    let ns = thread_netns().unwrap_or(0);
    let cached = CONN.with(|c| c.borrow_mut().take());
    let conn = match cached {
        Some(registered) if registered.netns == ns => registered,
        _ => Registered::new(ns, netlink::Conn::open()?),
    };
    let result = f(&conn.conn);
    if result.is_ok() {
        CONN.with(|c| *c.borrow_mut() = Some(conn));
    }
    result
}

/// Offsets (from the message start) of each element nest in a NEWSETELEM /
/// DELSETELEM message.
fn element_offsets(msg: &[u8]) -> Vec<u32> {
    const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    let rd16 = |at: usize| {
        msg.get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let mut out = Vec::new();
    let mut at = 20;
    while let (Some(len), Some(ty)) = (rd16(at), rd16(at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > msg.len() {
            break;
        }
        if ty & 0x3fff == NFTA_SET_ELEM_LIST_ELEMENTS {
            let mut inner = at + 4;
            while let Some(ilen) = rd16(inner) {
                let ilen = usize::from(ilen);
                if ilen < 4 || inner + ilen > at + len {
                    break;
                }
                out.push(inner as u32);
                inner += ilen.next_multiple_of(4);
            }
        }
        at += len.next_multiple_of(4);
    }
    out
}

fn chain_hook(kind: ChainKind, hook: Hook, prio: i32) -> ChainHook<'static> {
    ChainHook {
        kind: match kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        },
        hooknum: match hook {
            Hook::Prerouting => 0,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        },
        prio,
        policy: 1, // NF_ACCEPT
    }
}

/// Adds the element chunks of one set (or one run of changes) to `batch`.
/// Where element messages go: the set, and its id if created in the batch.
struct ElemTarget<'a> {
    table: &'a str,
    set: &'a str,
    set_id: Option<u32>,
}

fn push_elements(
    batch: &mut Batch,
    (ty, flags): (u16, u16),
    target: &ElemTarget<'_>,
    elems: Vec<ElemBytes>,
    first_index: usize,
) -> Result<(), NftError> {
    let ElemTarget { table, set, set_id } = *target;
    let mut start = 0;
    while start < elems.len() {
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

/// Replaces `table inet <table.name>` atomically with `table`, in one batch.
/// Idempotent; works whether or not the table exists.
pub fn replace_table(table: &Table) -> Result<(), NftError> {
    let name = table.name.as_str();
    let rules: usize = table.chains.iter().map(|c| c.rules.len()).sum();
    let mut b = Batch::new(3 + table.chains.len() + 2 * table.sets.len() + rules);
    let t = Msg::Table {
        name,
        flags: Some(0),
    };
    b.push(
        NFT_MSG_NEWTABLE,
        NLM_F_CREATE,
        &t,
        What::Text(format!("table inet {name}")),
    )?;
    b.push(
        NFT_MSG_DELTABLE,
        0,
        &Msg::Table { name, flags: None },
        What::Text(format!("delete table inet {name}")),
    )?;
    b.push(
        NFT_MSG_NEWTABLE,
        NLM_F_CREATE,
        &t,
        What::Text(format!("table inet {name}")),
    )?;

    for chain in &table.chains {
        let hook = chain
            .base
            .map(|bc| chain_hook(bc.kind, bc.hook, bc.priority.value()));
        let msg = Msg::Chain {
            table: name,
            name: &chain.name,
            hook,
        };
        b.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            &msg,
            What::Text(format!("chain {}", chain.name)),
        )?;
    }

    let mut ids: HashMap<&str, u32> = HashMap::new();
    for (i, set) in table.sets.iter().enumerate() {
        let kind = if set.is_map() { "map" } else { "set" };
        let id = i as u32 + 1;
        let spec = set_spec(set, id).map_err(|e| NftError::Encode {
            object: format!("{kind} {}", set.name),
            reason: e.0,
        })?;
        b.push(
            NFT_MSG_NEWSET,
            NLM_F_CREATE,
            &Msg::Set {
                table: name,
                spec: &spec,
            },
            What::Text(format!("{kind} {}", set.name)),
        )?;
        ids.insert(set.name.as_str(), id);
        if set.elements.is_empty() {
            continue;
        }
        let elems = set
            .elements
            .iter()
            .map(|e| {
                element_bytes(&set.key, &set.data, e).map_err(|err| NftError::Encode {
                    object: format!("element {e} of {kind} {}", set.name),
                    reason: err.0,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let target = ElemTarget {
            table: name,
            set: &set.name,
            set_id: Some(id),
        };
        push_elements(
            &mut b,
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
            &target,
            elems,
            0,
        )?;
    }

    for chain in &table.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            let object = format!("rule {} of chain {}: {rule}", i + 1, chain.name);
            let exprs =
                rule_exprs(rule, &|s| ids.get(s).copied()).map_err(|e| NftError::Encode {
                    object: object.clone(),
                    reason: e.0,
                })?;
            let msg = Msg::Rule {
                table: name,
                chain: &chain.name,
                exprs: &exprs,
            };
            b.push(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                &msg,
                What::Text(object),
            )?;
        }
    }

    b.commit(&|set, i| {
        table
            .set(set)
            .and_then(|s| s.elements.get(i))
            .map(|e| e.to_string())
    })
}

/// Adds and removes set/map elements of `table inet <table>` in one batch.
///
/// The set's types are read from the kernel side's point of view: the key
/// (and data) layout follows the element's values. Adds use
/// `NLM_F_CREATE | NLM_F_EXCL`: adding an element that is already present
/// fails with EEXIST, and removing an absent one with ENOENT; either aborts
/// the whole batch (nothing changes) and the error names the element.
pub fn update_elements(table: &str, changes: &[ElementChange]) -> Result<(), NftError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut b = Batch::new(changes.len());
    // Consecutive changes of the same kind on the same set share messages.
    let mut i = 0;
    while i < changes.len() {
        let (add, set) = change_parts(&changes[i]);
        let mut j = i;
        let mut elems = Vec::new();
        while j < changes.len() && change_parts(&changes[j]) == (add, set) {
            let e = change_element(&changes[j]);
            let key = encode::encode_values(&e.key, &value_types(&e.key), "element key").map_err(
                |err| NftError::Encode {
                    object: format!("element {e} of set {set}"),
                    reason: err.0,
                },
            )?;
            let data = if add && !e.data.is_empty() {
                Some(
                    encode::encode_values(&e.data, &value_types(&e.data), "element data").map_err(
                        |err| NftError::Encode {
                            object: format!("element {e} of set {set}"),
                            reason: err.0,
                        },
                    )?,
                )
            } else {
                None
            };
            elems.push((key, data));
            j += 1;
        }
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        push_elements(
            &mut b,
            (ty, flags),
            &ElemTarget {
                table,
                set,
                set_id: None,
            },
            elems,
            i,
        )?;
        i = j;
    }
    b.commit(&|_, i| changes.get(i).map(|c| change_element(c).to_string()))
}

fn change_parts(c: &ElementChange) -> (bool, &str) {
    match c {
        ElementChange::Add { set, .. } => (true, set.as_str()),
        ElementChange::Remove { set, .. } => (false, set.as_str()),
    }
}

fn change_element(c: &ElementChange) -> &Element {
    match c {
        ElementChange::Add { element, .. } | ElementChange::Remove { element, .. } => element,
    }
}

fn value_types(values: &[crate::nft::Value]) -> Vec<crate::nft::KeyType> {
    values.iter().map(encode::value_type).collect()
}

/// Whether `table inet NAME` exists (one NFT_MSG_GETTABLE request).
pub fn table_exists(name: &str) -> Result<bool, NftError> {
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NFPROTO_INET: u8 = 1;
    object_exists(
        NFT_MSG_GETTABLE,
        NFPROTO_INET,
        &[(NFTA_TABLE_NAME, name)],
        &format!("table inet {name}"),
    )
}

/// Whether `chain inet TABLE CHAIN` exists.
pub fn inet_chain_exists(table: &str, chain: &str) -> Result<bool, NftError> {
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    const NFPROTO_INET: u8 = 1;
    let attrs = [(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)];
    object_exists(
        NFT_MSG_GETCHAIN,
        NFPROTO_INET,
        &attrs,
        &format!("chain inet {table} {chain}"),
    )
}

/// Whether `chain ip6 TABLE CHAIN` exists: how Docker's own IPv6 firewall
/// (iptables-nft) is recognised.
pub fn ip6_chain_exists(table: &str, chain: &str) -> Result<bool, NftError> {
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    const NFPROTO_IPV6: u8 = 10;
    let attrs = [(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)];
    object_exists(
        NFT_MSG_GETCHAIN,
        NFPROTO_IPV6,
        &attrs,
        &format!("chain ip6 {table} {chain}"),
    )
}

/// One non-dump GET request with string attributes: the kernel answers with
/// the object and an ack, or with ENOENT.
fn object_exists(
    msg_type: u16,
    family: u8,
    attrs: &[(u16, &str)],
    object: &str,
) -> Result<bool, NftError> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[family, 0, 0, 0]);
    for (kind, value) in attrs {
        let attr_len = 4 + value.len() + 1;
        msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(value.as_bytes());
        msg.resize(msg.len() + 1, 0);
        msg.resize(msg.len().next_multiple_of(4), 0);
    }
    let len = msg.len() as u32;
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    let acks = with_conn(|conn| conn.transact(&msg, seq, &[seq]))?;
    match acks.first().map(|a| a.errno) {
        Some(0) => Ok(true),
        Some(ENOENT) => Ok(false),
        Some(errno) => Err(NftError::Kernel {
            object: object.to_string(),
            errno,
            message: None,
            later_errors: 0,
        }),
        None => Err(NftError::Protocol(format!("no answer about {object}"))),
    }
}

/// Deletes `table inet <name>`: `Ok(true)` if it existed, `Ok(false)` if
/// there was none.
pub fn delete_table(name: &str) -> Result<bool, NftError> {
    let mut b = Batch::new(1);
    b.push(
        NFT_MSG_DELTABLE,
        0,
        &Msg::Table { name, flags: None },
        What::Text(format!("delete table inet {name}")),
    )?;
    match b.commit(&|_, _| None) {
        Ok(()) => Ok(true),
        Err(NftError::Kernel { errno: ENOENT, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
