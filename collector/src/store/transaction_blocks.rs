//! The embedded store's transaction index in blocks: the transactions of one series that ended
//! in one 10 s slot, as written by one flush, packed into one row.
//!
//! A row per transaction was the largest part of the collector's CPU per span at load (a
//! B-tree insert and a statement per transaction, about a fifth of the spans); a flush now
//! writes a row per series and slot. A block's records are fixed-size, so reading one is a
//! bounds check and a copy per record. A transaction written twice (a retried export, a
//! replayed log) may sit in two blocks; readers drop the copy ([`Newest`]).

use super::TransactionRecord;
use crate::model::SeriesId;

/// Width of the end-time slot a block covers, ns: a block is deleted by retention when its
/// newest transaction is past the cutoff, so what outlives the cutoff is at most this.
pub const SLOT_NS: i64 = 10_000_000_000;

/// The format's first byte.
const FORMAT: u8 = 1;
/// end_ns (8) + duration_us (8) + error (1) + trace id (16) + span id (8).
const RECORD: usize = 41;

/// Transactions of one series and slot, ready to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    /// The series.
    pub series: SeriesId,
    /// Earliest end, unix ns.
    pub first_end_ns: i64,
    /// Latest end, unix ns.
    pub last_end_ns: i64,
    /// Records in `data`.
    pub count: usize,
    /// The packed records.
    pub data: Vec<u8>,
}

/// Groups transactions into blocks by series and slot.
pub fn blocks(transactions: &[TransactionRecord]) -> Vec<Block> {
    let mut order: Vec<&TransactionRecord> = transactions.iter().collect();
    order.sort_unstable_by_key(|t| (t.series, t.end_ns.div_euclid(SLOT_NS), t.end_ns));
    order
        .chunk_by(|a, b| {
            a.series == b.series && a.end_ns.div_euclid(SLOT_NS) == b.end_ns.div_euclid(SLOT_NS)
        })
        .map(|group| {
            let mut data = Vec::with_capacity(1 + group.len() * RECORD);
            data.push(FORMAT);
            for t in group {
                data.extend_from_slice(&t.end_ns.to_le_bytes());
                data.extend_from_slice(&t.duration_us.to_le_bytes());
                data.push(u8::from(t.error));
                data.extend_from_slice(&t.trace_id);
                data.extend_from_slice(&t.span_id);
            }
            Block {
                series: group[0].series,
                first_end_ns: group[0].end_ns,
                last_end_ns: group[group.len() - 1].end_ns,
                count: group.len(),
                data,
            }
        })
        .collect()
}

/// A block that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("a transaction index block of series {series} is corrupt ({len} bytes)")]
pub struct CorruptBlock {
    series: i64,
    len: usize,
}

/// The records of a stored block.
pub fn decode(
    series: SeriesId,
    data: &[u8],
) -> Result<impl Iterator<Item = TransactionRecord> + '_, CorruptBlock> {
    let corrupt = CorruptBlock {
        series: series.0,
        len: data.len(),
    };
    let Some((&FORMAT, records)) = data.split_first() else {
        return Err(corrupt);
    };
    let (records, rest) = records.as_chunks::<RECORD>();
    if !rest.is_empty() {
        return Err(corrupt);
    }
    Ok(records.iter().map(move |r| TransactionRecord {
        series,
        end_ns: i64::from_le_bytes(field(r, 0)),
        duration_us: u64::from_le_bytes(field(r, 8)),
        error: r[16] != 0,
        trace_id: field(r, 17),
        span_id: field(r, 33),
    }))
}

/// The `N` bytes of a record from `at`.
fn field<const N: usize>(record: &[u8; RECORD], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&record[at..at + N]);
    out
}

/// Keeps the newest `limit` distinct transactions of those offered, for blocks read newest
/// (latest end) first.
#[derive(Debug)]
pub struct Newest {
    limit: usize,
    kept: Vec<TransactionRecord>,
    /// Once `limit` are kept: the end of the oldest of them.
    floor_ns: Option<i64>,
}

impl Newest {
    /// Keeps at most `limit`.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: Vec::new(),
            floor_ns: None,
        }
    }

    /// Whether a block whose latest end is `last_end_ns` can still add anything.
    pub fn wants(&self, last_end_ns: i64) -> bool {
        self.floor_ns.is_none_or(|floor| last_end_ns >= floor)
    }

    /// Offers a transaction.
    pub fn offer(&mut self, record: TransactionRecord) {
        if self.wants(record.end_ns) {
            self.kept.push(record);
            if self.kept.len() >= self.limit.saturating_mul(2).max(1024) {
                self.settle();
            }
        }
    }

    /// Sorts newest first, drops copies and keeps `limit`.
    fn settle(&mut self) {
        self.kept.sort_unstable_by(|a, b| {
            b.end_ns
                .cmp(&a.end_ns)
                .then(a.series.cmp(&b.series))
                .then(a.span_id.cmp(&b.span_id))
        });
        self.kept
            .dedup_by(|a, b| (a.series, a.end_ns, a.span_id) == (b.series, b.end_ns, b.span_id));
        self.kept.truncate(self.limit);
        if self.kept.len() == self.limit {
            self.floor_ns = self.kept.last().map(|t| t.end_ns);
        }
    }

    /// The kept transactions, newest first.
    pub fn finish(mut self) -> Vec<TransactionRecord> {
        self.settle();
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(series: i64, end_ns: i64, n: u8) -> TransactionRecord {
        TransactionRecord {
            series: SeriesId(series),
            end_ns,
            duration_us: u64::from(n) * 1000 + 7,
            error: n % 2 == 1,
            trace_id: [n; 16],
            span_id: [n.wrapping_add(1); 8],
        }
    }

    #[test]
    fn blocks_group_by_series_and_slot_and_decode_to_the_same_records() {
        let records = vec![
            record(2, SLOT_NS + 5, 1),
            record(1, 3, 2),
            record(1, SLOT_NS - 1, 3),
            record(1, SLOT_NS, 4),
            record(2, -1, 5),
        ];
        let blocks = blocks(&records);
        let shape: Vec<(i64, i64, i64, usize)> = blocks
            .iter()
            .map(|b| (b.series.0, b.first_end_ns, b.last_end_ns, b.count))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, 3, SLOT_NS - 1, 2),
                (1, SLOT_NS, SLOT_NS, 1),
                (2, -1, -1, 1),
                (2, SLOT_NS + 5, SLOT_NS + 5, 1),
            ]
        );
        let mut decoded: Vec<TransactionRecord> = blocks
            .iter()
            .flat_map(|b| decode(b.series, &b.data).unwrap().collect::<Vec<_>>())
            .collect();
        let mut expected = records;
        decoded.sort_by_key(|t| (t.series, t.end_ns));
        expected.sort_by_key(|t| (t.series, t.end_ns));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_damaged_block_is_an_error() {
        let block = &blocks(&[record(1, 1, 1)])[0];
        assert!(decode(SeriesId(1), &block.data[..block.data.len() - 1]).is_err());
        assert!(decode(SeriesId(1), &[]).is_err());
        let mut other_format = block.data.clone();
        other_format[0] = 2;
        assert!(decode(SeriesId(1), &other_format).is_err());
    }

    #[test]
    fn newest_keeps_the_latest_distinct_transactions() {
        let mut newest = Newest::new(3);
        for end in [50, 10, 40, 40, 30, 20] {
            newest.offer(record(1, end, u8::try_from(end).unwrap()));
        }
        // A copy of the transaction ending at 40 (same series, end and span) counts once.
        let ends: Vec<i64> = newest.finish().iter().map(|t| t.end_ns).collect();
        assert_eq!(ends, vec![50, 40, 30]);
    }

    #[test]
    fn newest_stops_wanting_blocks_older_than_what_it_keeps() {
        let mut newest = Newest::new(2);
        for i in 0..2000 {
            newest.offer(record(1, 10_000 + i, 1));
        }
        assert!(newest.wants(20_000));
        assert!(!newest.wants(9_999), "{:?}", newest.floor_ns);
        assert_eq!(newest.finish().len(), 2);
    }
}
