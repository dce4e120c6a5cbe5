//! Sets and maps: nft's key types and lengths, set userdata, and element
//! values in kernel byte layout.

use super::{DATA_MAX, IFNAMSIZ, ifname_bytes, k};
use crate::apply::nftables::EncodeError;
use crate::nft::{Element, KeyType, Set, Value};

/// nft's datatype ids (`enum datatypes` in nft's datatype.h).
fn type_id(t: KeyType) -> u32 {
    match t {
        KeyType::Ipv6Addr => 8,
        KeyType::InetProto => 12,
        KeyType::InetService => 13,
        KeyType::Icmpv6Type => 29,
        KeyType::IfName => 41,
        // A raw payload field is an integer to nft.
        KeyType::NdTarget => 4,
    }
}

/// Natural length in bytes of one value of the type.
fn type_len(t: KeyType) -> usize {
    match t {
        KeyType::Ipv6Addr => 16,
        KeyType::InetProto => 1,
        KeyType::InetService => 2,
        KeyType::Icmpv6Type => 1,
        KeyType::IfName => IFNAMSIZ,
        KeyType::NdTarget => 16,
    }
}

/// nft's `enum byteorder` for the type: INVALID 0, HOST 1, BIG 2.
fn type_byteorder(t: KeyType) -> u32 {
    match t {
        KeyType::Ipv6Addr | KeyType::InetService | KeyType::Icmpv6Type | KeyType::NdTarget => 2,
        KeyType::IfName => 1,
        KeyType::InetProto => 0,
    }
}

/// Concatenated type id: `(t1 << 6 | t2) << 6 | t3 ...`.
pub(crate) fn concat_type(types: &[KeyType]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | type_id(*t))
}

/// Length of a (possibly concatenated) key: a single value has its natural
/// length, each part of a concatenation is padded to 4 bytes.
pub(crate) fn key_len(types: &[KeyType]) -> usize {
    match types {
        [one] => type_len(*one),
        _ => types.iter().map(|t| type_len(*t).next_multiple_of(4)).sum(),
    }
}

/// Kernel-side shape of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetSpec {
    pub name: String,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub data: Option<(u32, u32)>,
    pub id: u32,
    pub userdata: Vec<u8>,
}

pub(crate) fn set_spec(set: &Set, id: u32) -> Result<SetSpec, EncodeError> {
    if set.key.is_empty() {
        return Err(EncodeError::new(format!(
            "set {} has no key type",
            set.name
        )));
    }
    let klen = key_len(&set.key);
    let dlen = if set.is_map() { key_len(&set.data) } else { 0 };
    if klen > DATA_MAX || dlen > DATA_MAX {
        return Err(EncodeError::new(format!(
            "set {}: key or data longer than {DATA_MAX} bytes",
            set.name
        )));
    }
    let data = set.is_map().then(|| (concat_type(&set.data), dlen as u32));
    Ok(SetSpec {
        name: set.name.clone(),
        flags: if set.is_map() { k::NFT_SET_MAP } else { 0 },
        key_type: concat_type(&set.key),
        key_len: klen as u32,
        data,
        id,
        userdata: set_userdata(set),
    })
}

// libnftnl's udata TLVs (`enum udata_set_type` / `enum udata_set_typeof`).
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_KEY_TYPEOF: u8 = 3;
const UDATA_SET_DATA_TYPEOF: u8 = 4;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_TYPEOF_EXPR: u8 = 0;
const UDATA_TYPEOF_DATA: u8 = 1;
/// nft's `EXPR_CONCAT`.
const EXPR_CONCAT: u32 = 13;
/// nft's `EXPR_PAYLOAD`, and the attributes nft records of a payload
/// expression in a set's typeof: description, type, base, offset, length.
const EXPR_PAYLOAD: u32 = 7;
const UDATA_PAYLOAD_DESC: u8 = 0;
const UDATA_PAYLOAD_TYPE: u8 = 1;
const UDATA_PAYLOAD_BASE: u8 = 2;
const UDATA_PAYLOAD_OFFSET: u8 = 3;
const UDATA_PAYLOAD_LEN: u8 = 4;
/// nft's `PROTO_BASE_TRANSPORT_HDR`.
const PAYLOAD_BASE_TRANSPORT: u32 = 3;

fn udata_u32(buf: &mut Vec<u8>, ty: u8, v: u32) {
    buf.extend_from_slice(&[ty, 4]);
    buf.extend_from_slice(&v.to_ne_bytes());
}

/// nft records a concatenation as a "typeof" nest with the expression type
/// and an empty data nest.
fn udata_concat_typeof(buf: &mut Vec<u8>, ty: u8) {
    buf.extend_from_slice(&[ty, 8]);
    udata_u32(buf, UDATA_TYPEOF_EXPR, EXPR_CONCAT);
    buf.extend_from_slice(&[UDATA_TYPEOF_DATA, 0]);
}

/// `typeof @th,64,128`: nft records the raw payload expression, so that it
/// prints the set's type (and values) back the same way.
fn udata_nd_target_typeof(buf: &mut Vec<u8>, ty: u8) {
    let mut payload = Vec::new();
    udata_u32(&mut payload, UDATA_PAYLOAD_DESC, 0);
    udata_u32(&mut payload, UDATA_PAYLOAD_TYPE, 0);
    udata_u32(&mut payload, UDATA_PAYLOAD_BASE, PAYLOAD_BASE_TRANSPORT);
    udata_u32(&mut payload, UDATA_PAYLOAD_OFFSET, 64);
    udata_u32(&mut payload, UDATA_PAYLOAD_LEN, 128);
    let mut nest = Vec::new();
    udata_u32(&mut nest, UDATA_TYPEOF_EXPR, EXPR_PAYLOAD);
    nest.extend_from_slice(&[UDATA_TYPEOF_DATA, payload.len() as u8]);
    nest.extend_from_slice(&payload);
    buf.extend_from_slice(&[ty, nest.len() as u8]);
    buf.extend_from_slice(&nest);
}

fn byteorder(types: &[KeyType]) -> u32 {
    match types {
        [one] => type_byteorder(*one),
        _ => 0,
    }
}

/// The NFTNL_SET_USERDATA nft writes (and reads back to print values).
pub(crate) fn set_userdata(set: &Set) -> Vec<u8> {
    let mut buf = Vec::new();
    udata_u32(&mut buf, UDATA_SET_KEYBYTEORDER, byteorder(&set.key));
    if set.is_map() {
        udata_u32(&mut buf, UDATA_SET_DATABYTEORDER, byteorder(&set.data));
    }
    if set.key.len() > 1 {
        udata_concat_typeof(&mut buf, UDATA_SET_KEY_TYPEOF);
    } else if set.key == [KeyType::NdTarget] {
        udata_nd_target_typeof(&mut buf, UDATA_SET_KEY_TYPEOF);
    }
    if set.is_map() {
        if set.data.len() > 1 {
            udata_concat_typeof(&mut buf, UDATA_SET_DATA_TYPEOF);
        }
        udata_u32(&mut buf, UDATA_SET_DATA_INTERVAL, 0);
    }
    buf
}

pub(crate) fn value_type(v: &Value) -> KeyType {
    match v {
        Value::Addr(_) => KeyType::Ipv6Addr,
        Value::Proto(_) => KeyType::InetProto,
        Value::Port(_) => KeyType::InetService,
        Value::IfName(_) => KeyType::IfName,
        Value::Icmpv6(_) => KeyType::Icmpv6Type,
        Value::NdTarget(_) => KeyType::NdTarget,
    }
}

/// A key or data value in kernel byte layout, kept inline: an element
/// encodes without a heap allocation. At most [`DATA_MAX`] bytes
/// (NFT_DATA_VALUE_MAXLEN), which is also what the kernel accepts.
#[derive(Clone, Copy)]
pub(crate) struct ValueBytes {
    bytes: [u8; DATA_MAX],
    len: usize,
}

impl ValueBytes {
    fn new() -> ValueBytes {
        ValueBytes {
            bytes: [0; DATA_MAX],
            len: 0,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.len + b.len();
        let Some(dst) = self.bytes.get_mut(self.len..end) else {
            return Err(EncodeError::new(format!(
                "value longer than {DATA_MAX} bytes"
            )));
        };
        dst.copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    /// Zero bytes up to the next multiple of 4 (the buffer starts zeroed).
    fn pad4(&mut self) -> Result<(), EncodeError> {
        let padded = self.len.next_multiple_of(4);
        if padded > DATA_MAX {
            return Err(EncodeError::new(format!(
                "value longer than {DATA_MAX} bytes"
            )));
        }
        self.len = padded;
        Ok(())
    }
}

fn push_value(out: &mut ValueBytes, v: &Value) -> Result<(), EncodeError> {
    match v {
        Value::Addr(a) => out.push(&a.octets()),
        Value::Proto(p) => out.push(&[p.number()]),
        Value::Port(p) => out.push(&p.to_be_bytes()),
        Value::IfName(n) => out.push(&ifname_bytes(n)?),
        Value::Icmpv6(t) => out.push(&[t.number()]),
        Value::NdTarget(a) => out.push(&a.octets()),
    }
}

/// A key or data value of an element: a single value at its natural length,
/// a concatenation with each part padded to 4 bytes. With `types`, checked
/// against the set's types; without, typed by the values themselves (an
/// element change, whose set the kernel checks).
pub(crate) fn encode_values(
    values: &[Value],
    types: Option<&[KeyType]>,
    what: &str,
) -> Result<ValueBytes, EncodeError> {
    if values.is_empty() {
        return Err(EncodeError::new(format!("{what} is empty")));
    }
    if let Some(types) = types
        && (values.len() != types.len()
            || values.iter().zip(types).any(|(v, t)| value_type(v) != *t))
    {
        return Err(EncodeError::new(format!(
            "{what} does not match the set's type"
        )));
    }
    let mut out = ValueBytes::new();
    if let [one] = values {
        push_value(&mut out, one)?;
        return Ok(out);
    }
    for v in values {
        push_value(&mut out, v)?;
        out.pad4()?;
    }
    Ok(out)
}

/// Key and (for maps) data of an element of a set typed `set_key : set_data`.
pub(crate) fn element_values(
    set_key: &[KeyType],
    set_data: &[KeyType],
    e: &Element,
) -> Result<(ValueBytes, Option<ValueBytes>), EncodeError> {
    let key = encode_values(&e.key, Some(set_key), "element key")?;
    let data = if set_data.is_empty() {
        if !e.data.is_empty() {
            return Err(EncodeError::new(
                "element has data but the set is not a map".to_string(),
            ));
        }
        None
    } else {
        Some(encode_values(&e.data, Some(set_data), "element data")?)
    };
    Ok((key, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::L4Proto;

    #[test]
    fn concat_types_and_lengths() {
        let k = [KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService];
        assert_eq!(concat_type(&k), 0x830d);
        assert_eq!(key_len(&k), 24);
        assert_eq!(
            concat_type(&[KeyType::InetProto, KeyType::InetService]),
            0x30d
        );
        assert_eq!(key_len(&[KeyType::Ipv6Addr, KeyType::InetService]), 20);
        assert_eq!(key_len(&[KeyType::IfName]), 16);
        assert_eq!(key_len(&[KeyType::Icmpv6Type]), 1);
    }

    #[test]
    fn userdata_matches_nft() {
        let set = |key: Vec<KeyType>, data: Vec<KeyType>| Set {
            name: "s".into(),
            key,
            data,
            elements: vec![],
        };
        assert_eq!(
            set_userdata(&set(vec![KeyType::IfName], vec![])),
            [0, 4, 1, 0, 0, 0]
        );
        assert_eq!(
            set_userdata(&set(
                vec![KeyType::InetProto, KeyType::InetService],
                vec![KeyType::Ipv6Addr, KeyType::InetService]
            )),
            [
                0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 4, 8, 0, 4, 13,
                0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0
            ]
        );
        // What nft 1.0.6 writes for `typeof @th,64,128` (read with --debug=mnl).
        assert_eq!(
            set_userdata(&set(vec![KeyType::NdTarget], vec![])),
            [
                0, 4, 2, 0, 0, 0, 3, 38, 0, 4, 7, 0, 0, 0, 1, 30, 0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0,
                0, 2, 4, 3, 0, 0, 0, 3, 4, 64, 0, 0, 0, 4, 4, 128, 0, 0, 0
            ]
        );
        assert_eq!(
            set_userdata(&set(vec![KeyType::Ipv6Addr], vec![KeyType::Ipv6Addr])),
            [0, 4, 2, 0, 0, 0, 1, 4, 2, 0, 0, 0, 6, 4, 0, 0, 0, 0]
        );
    }

    #[test]
    fn concat_element_is_padded() {
        let e = Element {
            key: vec![
                Value::Addr("2001:db8::2".parse().unwrap()),
                Value::Proto(L4Proto::Tcp),
                Value::Port(443),
            ],
            data: vec![],
        };
        let k = [KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService];
        let (key, data) = element_values(&k, &[], &e).unwrap();
        assert_eq!(key.as_slice().len(), 24);
        assert_eq!(&key.as_slice()[16..], &[6, 0, 0, 0, 1, 187, 0, 0]);
        assert!(data.is_none());
        // Typed by its own values (an element change): the same bytes.
        let untyped = encode_values(&e.key, None, "key").unwrap();
        assert_eq!(untyped.as_slice(), key.as_slice());
    }
}
