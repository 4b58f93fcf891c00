//! A borrowing reader of the protobuf wire format.
//!
//! The ingest path reads OTLP requests with it instead of decoding them into `prost`'s owned
//! message tree: ids, names and attribute values are borrowed from the request's bytes, so a
//! span costs no allocation until the collector decides what it keeps (benches/RESULTS.md,
//! "Collector load"). `prost` has no borrowing decoder; this reader is the part of one the
//! collector needs — fields in order, nothing interpreted.
//!
//! Strictness follows `prost`: a truncated message, an over-long varint, a field number 0, an
//! unknown wire type, a known field with the wrong wire type and a string that is not UTF-8 are
//! errors. Fields the caller does not ask about are skipped without being validated.

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("message truncated")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("invalid varint")]
    Varint,
    /// A tag with field number 0.
    #[error("invalid field number 0")]
    FieldZero,
    /// A wire type that does not exist (6, 7) or an unmatched end of group.
    #[error("invalid wire type {0}")]
    WireType(u8),
    /// A known field encoded with another wire type than its declared type's.
    #[error("field {0} has the wrong wire type")]
    WrongType(u32),
    /// A string field that is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    Utf8(u32),
    /// Groups nested deeper than [`MAX_GROUP_DEPTH`].
    #[error("groups nested too deeply")]
    Depth,
}

/// Deepest nesting of (deprecated) groups skipped; `prost` allows 100 levels of recursion.
pub const MAX_GROUP_DEPTH: usize = 100;

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, strings, embedded messages.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value of a length-delimited field `field` (bytes or an embedded message).
    pub fn bytes(self, field: u32) -> Result<&'a [u8], WireError> {
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            _ => Err(WireError::WrongType(field)),
        }
    }

    /// The value of string field `field`.
    pub fn str(self, field: u32) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| WireError::Utf8(field))
    }

    /// The value of a varint field `field` (int32, int64, uint32, uint64, bool, enum).
    pub fn varint(self, field: u32) -> Result<u64, WireError> {
        match self {
            Self::Varint(v) => Ok(v),
            _ => Err(WireError::WrongType(field)),
        }
    }

    /// The value of a `fixed64` or `double` field `field`.
    pub fn fixed64(self, field: u32) -> Result<u64, WireError> {
        match self {
            Self::Fixed64(v) => Ok(v),
            _ => Err(WireError::WrongType(field)),
        }
    }
}

/// The fields of one message, in the order they were written.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
}

/// Iterates over the fields of `message`.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { buf: message }
}

// The reading functions are `inline(always)` and `next` has no closures: when reading a value
// was a call of its own, each field's `Value` went back through a stack slot written in parts
// and read whole, a failed store forwarding that was most of `next`'s time in the profile
// (benches/RESULTS.md).
impl<'a> Fields<'a> {
    /// Tags, lengths and small numbers are one byte; longer varints take [`Self::long_varint`].
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.split_first() {
            Some((&byte, rest)) if byte < 0x80 => {
                self.buf = rest;
                Ok(u64::from(byte))
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(WireError::Varint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 {
            WireError::Truncated
        } else {
            WireError::Varint
        })
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    #[inline(always)]
    fn tag(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError::Varint)?;
        if field == 0 {
            return Err(WireError::FieldZero);
        }
        Ok((field, (key & 7) as u8))
    }

    /// Skips the rest of a group started by `field`, nested groups included.
    fn skip_group(&mut self, field: u32, depth: usize) -> Result<(), WireError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(WireError::Depth);
        }
        loop {
            if self.buf.is_empty() {
                return Err(WireError::Truncated);
            }
            let (inner, wire_type) = self.tag()?;
            match wire_type {
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == field => return Ok(()),
                4 => return Err(WireError::WireType(4)),
                _ => {
                    self.value(wire_type)?;
                }
            }
        }
    }

    #[inline(always)]
    fn value(&mut self, wire_type: u8) -> Result<Value<'a>, WireError> {
        Ok(match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| WireError::Truncated)?,
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| WireError::Truncated)?,
            )),
            other => return Err(WireError::WireType(other)),
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.buf.is_empty() {
                return None;
            }
            // Plain matches, no closures: a closure here stayed a call of its own.
            let error = match self.tag() {
                Ok((field, 3)) => match self.skip_group(field, 1) {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                Ok((field, wire_type)) => match self.value(wire_type) {
                    Ok(value) => return Some(Ok((field, value))),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            // One error ends the iteration.
            self.buf = &[];
            return Some(Err(error));
        }
    }
}

/// Appends `value` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends length-delimited field `field` holding `bytes`.
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn collect(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        fields(buf).collect()
    }

    #[test]
    fn reads_what_prost_writes() {
        use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value};
        let kv = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(-3)),
            }),
            ..KeyValue::default()
        };
        let bytes = kv.encode_to_vec();
        let read = collect(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].0, 1);
        assert_eq!(read[0].1.str(1).unwrap(), "k");
        let value = collect(read[1].1.bytes(2).unwrap()).unwrap();
        assert_eq!(value, vec![(3, Value::Varint((-3_i64) as u64))]);
        let mut out = Vec::new();
        put_bytes(&mut out, 1, &bytes);
        assert_eq!(collect(&out).unwrap(), vec![(1, Value::Bytes(&bytes))]);
    }

    #[test]
    fn varints_round_trip_at_every_length() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, 8);
            put_varint(&mut out, value);
            assert_eq!(collect(&out).unwrap(), vec![(1, Value::Varint(value))]);
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(collect(&[0x0a, 5, 1]), Err(WireError::Truncated));
        assert_eq!(collect(&[0x08]), Err(WireError::Truncated));
        assert_eq!(collect(&[0x08; 12][..]), Ok(vec![(1, Value::Varint(8)); 6]));
        assert_eq!(
            collect(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            Err(WireError::Varint)
        );
        assert_eq!(collect(&[0x00, 0]), Err(WireError::FieldZero));
        assert_eq!(collect(&[0x0e]), Err(WireError::WireType(6)));
        assert_eq!(collect(&[0x0c]), Err(WireError::WireType(4)));
        assert_eq!(Value::Varint(1).bytes(3), Err(WireError::WrongType(3)));
        assert_eq!(Value::Bytes(&[0xff]).str(5), Err(WireError::Utf8(5)));
        // A group is skipped, nested ones included; an unterminated one is truncated.
        assert_eq!(
            collect(&[0x0b, 0x13, 0x14, 0x0c, 0x10, 1]),
            Ok(vec![(2, Value::Varint(1))])
        );
        assert_eq!(collect(&[0x0b, 0x10, 1]), Err(WireError::Truncated));
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, MAX_GROUP_DEPTH + 2).collect();
        assert_eq!(collect(&deep), Err(WireError::Depth));
    }
}
