//! A bounded set of OKX liquidation identities, oldest forgotten first.
//!
//! OKX re-sends recent liquidations after a (re)subscribe, so the normaliser drops any whose
//! identity `(instId, ts, side, posSide, sz, bkPx)` it has seen among the last `capacity`.
//! Both the Rust decoder and the Python reference normaliser check against the same set
//! (`_core.SeenSet`), so it has to give exactly the answers of the Python dict of tuples it
//! replaces: floats are equal by value (so -0.0 is 0.0) and a NaN equals nothing, not even
//! itself — yet every identity, NaN or not, takes its place in the eviction order.
//!
//! Symbols are interned to small ids (reference-counted by the identities that hold them),
//! which keeps an identity a 32-byte `Copy` value: checking one allocates nothing unless its
//! symbol is new. This runs once per liquidation on the decoder's hot path, so it hashes
//! with a multiply-xor mix rather than SipHash (which cost more than the rest of the check):
//! the identities come from the venue, not from anyone who could aim for collisions, and a
//! collision costs time, never a wrong answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::decode::OkxPos;

/// The timestamps an identity can hold: those of `int64` and `uint64` (what the Rust decoder
/// and msgspec, for the reference, decode).
pub const TS_RANGE: std::ops::Range<i128> = i64::MIN as i128..(u64::MAX as i128 + 1);

/// The most identities reserved up front (see `SeenSet::check_add`).
const RESERVE_MAX: usize = 1 << 16;

/// One liquidation identity. Floats are kept as bits, -0.0 folded into 0.0; `ts` is the low
/// 64 bits of the timestamp, `tag` the rest: order side, position side, timestamp sign.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    ts: u64,
    sz: u64,
    bk_px: u64,
    sym: u32,
    tag: u8,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.ts);
        h.write_u64(self.sz);
        h.write_u64(self.bk_px);
        h.write_u64(u64::from(self.sym) | u64::from(self.tag) << 32);
    }
}

/// Folds -0.0 into 0.0 (`-0.0 + 0.0` is `0.0`), so the two compare equal by bits as by value.
fn bits(x: f64) -> u64 {
    (x + 0.0).to_bits()
}

/// Multiply-xor word hasher (the identities' and symbols' hash), finished with a full
/// avalanche so every bit of the table index and control byte depends on every input bit.
#[derive(Default)]
struct MixHasher(u64);

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for MixHasher {
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(MIX).rotate_left(29);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        // the length keeps "A" and "A\0" apart
        self.write_u64(u64::from_le_bytes(tail) ^ (bytes.len() as u64) << 56);
    }

    fn finish(&self) -> u64 {
        // murmur3's finaliser
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ h >> 33
    }
}

type Mix = BuildHasherDefault<MixHasher>;

/// Interned symbols; an id is reused once no identity holds its symbol any more, so the
/// table never outgrows the set.
#[derive(Default)]
struct Symbols {
    ids: HashMap<Box<str>, u32, Mix>,
    slots: Vec<(Box<str>, u32)>,
    free: Vec<u32>,
    /// The last id interned: liquidations come in runs of one symbol.
    last: Option<u32>,
}

impl Symbols {
    /// The id of `name` (a new one holds no reference until `retain`).
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.last
            && *self.slots[id as usize].0 == *name
        {
            return id;
        }
        let id = self.intern_new(name);
        self.last = Some(id);
        id
    }

    fn intern_new(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = if let Some(id) = self.free.pop() {
            self.slots[id as usize] = (name.into(), 0);
            id
        } else {
            self.slots.push((name.into(), 0));
            (self.slots.len() - 1) as u32
        };
        self.ids.insert(name.into(), id);
        id
    }

    fn retain(&mut self, id: u32) {
        self.slots[id as usize].1 += 1;
    }

    fn release(&mut self, id: u32) {
        let (name, refs) = &mut self.slots[id as usize];
        *refs -= 1;
        if *refs == 0 {
            self.ids.remove(&**name);
            self.free.push(id);
            if self.last == Some(id) {
                self.last = None;
            }
        }
    }

    fn name(&self, id: u32) -> &str {
        &self.slots[id as usize].0
    }
}

/// One identity as it was checked (floats as stored: -0.0 reads back as 0.0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Identity<'a> {
    pub symbol: &'a str,
    /// In `TS_RANGE`.
    pub ts: i128,
    pub order_sell: bool,
    pub pos: OkxPos,
    pub sz: f64,
    pub bk_px: f64,
}

/// The last `capacity` liquidation identities checked (see the module documentation).
pub struct SeenSet {
    capacity: usize,
    /// The identities that can be equal to a later one (those without a NaN).
    set: HashSet<Key, Mix>,
    /// Every identity in the order checked, oldest first; at most `capacity`.
    order: VecDeque<Key>,
    symbols: Symbols,
}

impl SeenSet {
    /// A set remembering the last `capacity` identities (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a SeenSet remembers at least one identity");
        SeenSet { capacity, set: HashSet::default(), order: VecDeque::new(), symbols: Symbols::default() }
    }

    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether this identity is among the remembered ones; if not, it is remembered (and
    /// the oldest one forgotten when the set is full).
    pub fn check_add(&mut self, id: &Identity<'_>) -> bool {
        debug_assert!(TS_RANGE.contains(&id.ts));
        if self.order.capacity() == 0 {
            // a set that sees liquidations at all fills up in the end: reserve up front rather
            // than rehash every identity at each doubling on the way (bounded, as the
            // capacity comes from the caller)
            let n = self.capacity.min(RESERVE_MAX);
            self.set.reserve(n);
            self.order.reserve(n + 1);
        }
        let sym = self.symbols.intern(id.symbol);
        let pos = match id.pos {
            OkxPos::Long => 0,
            OkxPos::Short => 1,
            OkxPos::Net => 2,
        };
        let tag = u8::from(id.order_sell) | pos << 1 | u8::from(id.ts < 0) << 3;
        let key = Key { ts: id.ts as u64, sz: bits(id.sz), bk_px: bits(id.bk_px), sym, tag };
        if !id.sz.is_nan() && !id.bk_px.is_nan() && !self.set.insert(key) {
            return true;
        }
        self.symbols.retain(sym);
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            // each NaN-free identity is in `order` once, so this forgets exactly the one
            // leaving it (a NaN one was never in `set`)
            self.set.remove(&old);
            self.symbols.release(old.sym);
        }
        false
    }

    /// The remembered identities, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Identity<'_>> {
        self.order.iter().map(|k| Identity {
            symbol: self.symbols.name(k.sym),
            ts: if k.tag & 8 == 0 { i128::from(k.ts) } else { i128::from(k.ts as i64) },
            order_sell: k.tag & 1 == 1,
            pos: match k.tag >> 1 & 3 {
                0 => OkxPos::Long,
                1 => OkxPos::Short,
                _ => OkxPos::Net,
            },
            sz: f64::from_bits(k.sz),
            bk_px: f64::from_bits(k.bk_px),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn liq(symbol: &str, ts: i128, sz: f64) -> Identity<'_> {
        Identity { symbol, ts, order_sell: true, pos: OkxPos::Net, sz, bk_px: 100.0 }
    }

    #[test]
    fn duplicates_are_seen_until_forgotten_oldest_first() {
        let mut s = SeenSet::new(3);
        assert!(!s.check_add(&liq("A", 1, 1.0)));
        assert!(s.check_add(&liq("A", 1, 1.0)));
        assert!(!s.check_add(&liq("B", 1, 1.0)));
        assert!(!s.check_add(&liq("A", 2, 1.0)));
        assert!(!s.check_add(&liq("A", 1, 2.0)));
        // four distinct identities in a set of three: the first is new again (and that
        // forgets "B", the next oldest)
        assert_eq!(s.len(), 3);
        assert!(!s.check_add(&liq("A", 1, 1.0)));
        assert!(!s.check_add(&liq("B", 1, 1.0)));
        let kept: Vec<_> = s.iter().map(|i| (i.symbol, i.ts, i.sz)).collect();
        assert_eq!(kept, [("A", 1, 2.0), ("A", 1, 1.0), ("B", 1, 1.0)]);
    }

    #[test]
    fn every_field_is_part_of_the_identity() {
        let mut s = SeenSet::new(100);
        let base = liq("A", 1, 1.0);
        assert!(!s.check_add(&base));
        for other in [
            Identity { order_sell: false, ..base },
            Identity { pos: OkxPos::Long, ..base },
            Identity { pos: OkxPos::Short, ..base },
            Identity { bk_px: 100.5, ..base },
            Identity { ts: i128::from(u64::MAX), ..base },
            Identity { ts: -1, ..base },
            Identity { ts: i128::from(i64::MIN), ..base },
            Identity { symbol: "AB", ..base },
        ] {
            assert!(!s.check_add(&other));
            assert!(s.check_add(&other));
        }
        assert!(s.check_add(&base));
    }

    #[test]
    fn floats_compare_by_value() {
        let mut s = SeenSet::new(10);
        assert!(!s.check_add(&liq("A", 1, -0.0)));
        assert!(s.check_add(&liq("A", 1, 0.0)));
        assert_eq!(s.iter().next().unwrap().sz.to_bits(), 0.0f64.to_bits());
        // NaN equals nothing, but still takes a place in the eviction order
        assert!(!s.check_add(&liq("A", 1, f64::NAN)));
        assert!(!s.check_add(&liq("A", 1, f64::NAN)));
        assert!(!s.check_add(&Identity { bk_px: f64::NAN, ..liq("A", 1, 1.0) }));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn symbols_are_freed_with_the_last_identity_holding_them() {
        let mut s = SeenSet::new(2);
        for i in 0..1_000 {
            assert!(!s.check_add(&liq(&format!("S{i}"), 1, 1.0)));
        }
        assert!(s.symbols.slots.len() <= 3 && s.symbols.ids.len() == 2);
        let kept: Vec<_> = s.iter().map(|i| i.symbol.to_owned()).collect();
        assert_eq!(kept, ["S998", "S999"]);
        assert!(s.check_add(&liq("S999", 1, 1.0)));
        assert!(!s.check_add(&liq("S997", 1, 1.0)));
    }

    #[test]
    fn capacity_one_remembers_the_last() {
        let mut s = SeenSet::new(1);
        assert!(!s.check_add(&liq("A", 1, 1.0)));
        assert!(s.check_add(&liq("A", 1, 1.0)));
        assert!(!s.check_add(&liq("A", 2, 1.0)));
        assert!(!s.check_add(&liq("A", 1, 1.0)));
    }
}
