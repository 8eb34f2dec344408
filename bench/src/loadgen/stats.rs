//! Counts of one phase per operation type: totals, an hdrhistogram of latencies, and a time
//! series per second. Each core keeps its own; they are merged once the cores are done.

use hdrhistogram::Histogram;

use super::op::{OP_COUNT, Op};

/// Longest latency the histograms hold; a slower request saturates at it.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant figures of the latency histograms.
const LATENCY_SIGFIGS: u8 = 3;
/// Distinct error messages kept per phase (the count covers them all).
pub const FIRST_ERRORS_MAX: usize = 10;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIGS).expect("valid histogram bounds")
}

/// One second of one operation type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Second {
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
}

#[derive(Clone)]
pub struct OpStats {
    pub ops: u64,
    /// Object bytes moved (GET received, PUT sent; not listing or error bodies).
    pub bytes: u64,
    /// Objects touched: 1 per GET/STAT/PUT, the batch of a multi-delete, the keys of a listing page.
    pub objects: u64,
    pub errors: u64,
    pub latency_ns: Histogram<u64>,
    /// Indexed by whole seconds since the phase started.
    pub seconds: Vec<Second>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats { ops: 0, bytes: 0, objects: 0, errors: 0, latency_ns: new_histogram(), seconds: Vec::new() }
    }

    fn second(&mut self, at_s: usize) -> &mut Second {
        if self.seconds.len() <= at_s {
            self.seconds.resize(at_s + 1, Second::default());
        }
        &mut self.seconds[at_s]
    }

    fn merge(&mut self, other: &OpStats) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.objects += other.objects;
        self.errors += other.errors;
        self.latency_ns.add(&other.latency_ns).expect("histograms of equal bounds merge");
        for (i, s) in other.seconds.iter().enumerate() {
            let mine = self.second(i);
            mine.ops += s.ops;
            mine.bytes += s.bytes;
            mine.errors += s.errors;
        }
    }
}

/// All operation types of one core (or, merged, of the run).
#[derive(Clone)]
pub struct Stats {
    pub ops: Vec<OpStats>,
    pub first_errors: Vec<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { ops: (0..OP_COUNT).map(|_| OpStats::new()).collect(), first_errors: Vec::new() }
    }
}

impl Stats {
    pub fn op(&self, op: Op) -> &OpStats {
        &self.ops[op.index()]
    }

    pub fn record(&mut self, op: Op, at_s: usize, latency_ns: u64, bytes: u64, objects: u64) {
        let s = &mut self.ops[op.index()];
        s.ops += 1;
        s.bytes += bytes;
        s.objects += objects;
        s.latency_ns.saturating_record(latency_ns.clamp(1, LATENCY_NS_MAX));
        let second = s.second(at_s);
        second.ops += 1;
        second.bytes += bytes;
    }

    pub fn fail(&mut self, op: Op, at_s: usize, message: String) {
        let s = &mut self.ops[op.index()];
        s.errors += 1;
        s.second(at_s).errors += 1;
        if self.first_errors.len() < FIRST_ERRORS_MAX && !self.first_errors.contains(&message) {
            self.first_errors.push(message);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.merge(theirs);
        }
        for e in &other.first_errors {
            if self.first_errors.len() < FIRST_ERRORS_MAX && !self.first_errors.contains(e) {
                self.first_errors.push(e.clone());
            }
        }
    }

    pub fn errors(&self) -> u64 {
        self.ops.iter().map(|s| s.errors).sum()
    }

    /// The operation types that ran (succeeded or failed at least once).
    pub fn ran(&self) -> Vec<Op> {
        Op::ALL.into_iter().filter(|&op| self.op(op).ops + self.op(op).errors > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_totals_series_and_histograms() {
        let mut a = Stats::default();
        a.record(Op::Get, 0, 1_000, 10, 1);
        a.record(Op::Get, 2, 3_000, 10, 1);
        let mut b = Stats::default();
        b.record(Op::Get, 1, 2_000, 5, 1);
        b.fail(Op::Put, 1, "PUT k: status 403".into());
        b.fail(Op::Put, 1, "PUT k: status 403".into());
        a.merge(&b);
        let get = a.op(Op::Get);
        assert_eq!((get.ops, get.bytes, get.objects), (3, 25, 3));
        assert_eq!(get.seconds.iter().map(|s| s.ops).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(get.latency_ns.len(), 3);
        assert_eq!(a.op(Op::Put).errors, 2);
        assert_eq!(a.first_errors, ["PUT k: status 403"], "one message per distinct error");
        assert_eq!(a.ran(), [Op::Get, Op::Put]);
    }
}
