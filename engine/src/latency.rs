//! A fixed-size latency histogram that is `Copy`: for counters such as `StoreStats`, which are
//! read by value and subtracted (`since`) to get one run's share.
//!
//! Buckets are a quarter of an octave wide (a bucket's bounds are at most 25% apart): 0 to
//! 3 µs exactly, then four buckets for each power of two up to `2^OCTAVES_MAX` µs (about 12
//! days; longer values land in the last bucket). Percentiles answer a bucket's upper bound, so
//! they never understate.

/// Sub-buckets per octave, as bits.
const SUB_BITS: u32 = 2;
const SUBS: usize = 1 << SUB_BITS;
/// Highest octave with its own buckets.
const OCTAVES_MAX: u32 = 40;
/// Buckets in all: the exact values below `SUBS`, then `SUBS` per octave from `SUB_BITS` up.
pub const LATENCY_BUCKETS: usize = SUBS + (OCTAVES_MAX - SUB_BITS + 1) as usize * SUBS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyBuckets {
    counts: [u64; LATENCY_BUCKETS],
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets { counts: [0; LATENCY_BUCKETS] }
    }
}

fn index(us: u64) -> usize {
    if us < SUBS as u64 {
        return us as usize;
    }
    let octave = (63 - us.leading_zeros()).min(OCTAVES_MAX);
    let sub = if octave == OCTAVES_MAX && us >> OCTAVES_MAX >= 2 {
        SUBS as u64 - 1
    } else {
        (us >> (octave - SUB_BITS)) & (SUBS as u64 - 1)
    };
    SUBS + (octave - SUB_BITS) as usize * SUBS + sub as usize
}

/// The largest value bucket `i` holds.
fn upper_us(i: usize) -> u64 {
    if i < SUBS {
        return i as u64;
    }
    let octave = ((i - SUBS) / SUBS) as u32 + SUB_BITS;
    let sub = ((i - SUBS) % SUBS) as u64;
    ((SUBS as u64 + sub + 1) << (octave - SUB_BITS)) - 1
}

impl LatencyBuckets {
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[index(ns / 1000)] += 1;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0 to 1); None if empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        assert!((0.0..=1.0).contains(&q), "quantile {q} outside 0..=1");
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((n as f64 * q).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_us(i));
            }
        }
        unreachable!("rank {rank} is at most the count {n}")
    }

    /// What was recorded after `earlier` (an earlier reading of the same counters).
    pub fn since(&self, earlier: &LatencyBuckets) -> LatencyBuckets {
        let mut out = *self;
        for (o, e) in out.counts.iter_mut().zip(&earlier.counts) {
            assert!(*o >= *e, "`earlier` is not an earlier reading of these counters");
            *o -= e;
        }
        out
    }

    /// The non-empty buckets as (index, count): a compact form to send.
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (i, *c))
    }

    /// Adds `count` to bucket `index` (the inverse of `nonzero`); false if there is no such bucket.
    pub fn add_bucket(&mut self, index: usize, count: u64) -> bool {
        match self.counts.get_mut(index) {
            Some(c) => {
                *c += count;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_bounds_hold_it() {
        let mut last_upper = None;
        for i in 0..LATENCY_BUCKETS {
            let upper = upper_us(i);
            let lower = last_upper.map_or(0, |u: u64| u + 1);
            assert!(lower <= upper, "bucket {i}: {lower}..={upper}");
            assert_eq!(index(lower), i, "lower bound of bucket {i}");
            assert_eq!(index(upper), i, "upper bound of bucket {i}");
            if i >= SUBS {
                assert!(upper - lower + 1 <= lower.div_ceil(4) + 1, "bucket {i} ({lower}..={upper}) wider than a quarter octave");
            }
            last_upper = Some(upper);
        }
        assert_eq!(index(u64::MAX), LATENCY_BUCKETS - 1, "beyond the last octave: the last bucket");
    }

    #[test]
    fn quantiles_answer_the_upper_bound_and_since_subtracts() {
        let mut h = LatencyBuckets::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record_ns(us * 1000);
        }
        let p50 = h.quantile_us(0.5).expect("recorded");
        assert!((50..=59).contains(&p50), "p50 {p50}");
        let p99 = h.quantile_us(0.99).expect("recorded");
        assert!((99..=111).contains(&p99), "p99 {p99}");
        let before = h;
        h.record_ns(5_000_000);
        let run = h.since(&before);
        assert_eq!(run.count(), 1);
        assert!((5000..=6143).contains(&run.quantile_us(1.0).expect("one")));
        let mut copy = LatencyBuckets::default();
        for (i, c) in h.nonzero() {
            assert!(copy.add_bucket(i, c));
        }
        assert_eq!(copy, h);
        assert!(!copy.add_bucket(LATENCY_BUCKETS, 1));
    }
}
