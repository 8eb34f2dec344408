//! A linearizability checker for the key-value histories (Wing & Gong's search with Lowe's
//! memoisation, as Porcupine does it), run per key: linearizability is local (Herlihy & Wing),
//! so a history is linearizable iff each key's sub-history is, and the per-key searches stay
//! small.
//!
//! Why not stateright's `LinearizabilityTester`: it searches interleavings without memoising
//! (linearized set, state) pairs, so it is exponential in the number of concurrent operations;
//! it keeps one in-flight operation per thread, so a client that timed out and went on would
//! need a fresh thread id per timeout; and it pulls a whole model checker into the build. The
//! search below is about 100 lines and is checked against hand-made histories in its tests.
//!
//! An operation that timed out has no return: it may have taken effect at any point after its
//! invocation, or never. It is given a return at the end of time with any result accepted, which
//! is exactly that (linearising it after everything else changes nothing observed).

use crate::sim::kv::{Key, KvOp, KvResult, step};
use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryOp {
    pub client: u32,
    pub op: KvOp,
    /// Logical times (the simulator's event counter), unique across the history.
    pub invoke: u64,
    /// None: timed out or never answered (maybe applied).
    pub ret: Option<(u64, KvResult)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLinearizable {
    pub key: Key,
    pub ops: Vec<HistoryOp>,
    /// The search ran out of steps: undecided, reported so that it is looked at.
    pub gave_up: bool,
}

/// Search steps allowed per key before the checker gives up (reported as a failure, so that a
/// history too hard to check is noticed rather than passed).
pub const SEARCH_STEPS_MAX: u64 = 20_000_000;

pub fn check(history: &[HistoryOp]) -> Result<(), NotLinearizable> {
    let mut by_key: BTreeMap<Key, Vec<HistoryOp>> = BTreeMap::new();
    for op in history {
        // A read that never returned constrains nothing.
        if matches!(op.op, KvOp::Get { .. }) && op.ret.is_none() {
            continue;
        }
        by_key.entry(op.op.key()).or_default().push(op.clone());
    }
    for (key, ops) in by_key {
        match check_key(&ops) {
            Search::Linearizable => {}
            Search::NotLinearizable => return Err(NotLinearizable { key, ops, gave_up: false }),
            Search::GaveUp => return Err(NotLinearizable { key, ops, gave_up: true }),
        }
    }
    Ok(())
}

enum Search {
    Linearizable,
    NotLinearizable,
    GaveUp,
}

/// The call and return events of one key's history as a doubly linked list in time order;
/// index 0 is the head sentinel.
struct Events {
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call, the index of its return event.
    partner: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

const END: usize = usize::MAX;

impl Events {
    fn new(ops: &[HistoryOp]) -> Events {
        let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            let ret = op.ret.map_or(u64::MAX, |(at, _)| at);
            assert!(ret > op.invoke);
            times.push((op.invoke, true, i));
            times.push((ret, false, i));
        }
        // Calls before returns at equal times (only the end of time is shared).
        times.sort_by_key(|&(at, is_call, i)| (at, !is_call, i));
        let count = times.len() + 1;
        let mut events = Events {
            op: vec![0; count],
            is_call: vec![false; count],
            partner: vec![0; count],
            prev: (0..count).map(|i| i.wrapping_sub(1)).collect(),
            next: (1..=count).map(|i| if i == count { END } else { i }).collect(),
        };
        let mut return_of = vec![0; ops.len()];
        for (slot, &(_, is_call, op)) in times.iter().enumerate() {
            events.op[slot + 1] = op;
            events.is_call[slot + 1] = is_call;
            if !is_call {
                return_of[op] = slot + 1;
            }
        }
        for slot in 1..count {
            if events.is_call[slot] {
                events.partner[slot] = return_of[events.op[slot]];
            }
        }
        events
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.prev[at], self.next[at]);
        self.next[prev] = next;
        if next != END {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, at: usize) {
        let (prev, next) = (self.prev[at], self.next[at]);
        self.next[prev] = at;
        if next != END {
            self.prev[next] = at;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

fn accepts(expected: Option<(u64, KvResult)>, got: KvResult) -> bool {
    expected.is_none_or(|(_, result)| result == got)
}

fn check_key(ops: &[HistoryOp]) -> Search {
    let mut events = Events::new(ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut calls: Vec<(usize, u64)> = Vec::new();
    let mut state = 0u64;
    let mut entry = events.next[0];
    let mut steps = 0u64;
    while events.next[0] != END {
        steps += 1;
        if steps > SEARCH_STEPS_MAX {
            return Search::GaveUp;
        }
        assert!(entry != END);
        let op = events.op[entry];
        if events.is_call[entry] {
            let (next_state, result) = step(state, ops[op].op);
            if accepts(ops[op].ret, result) {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), next_state)) {
                    calls.push((entry, state));
                    state = next_state;
                    events.lift(entry);
                    entry = events.next[0];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = events.next[entry];
        } else {
            // A return whose call is not linearized yet: undo the last choice.
            let Some((call, previous)) = calls.pop() else { return Search::NotLinearizable };
            state = previous;
            let op = events.op[call];
            linearized[op / 64] &= !(1 << (op % 64));
            events.unlift(call);
            entry = events.next[call];
        }
    }
    Search::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, op: KvOp, invoke: u64, ret: Option<(u64, KvResult)>) -> HistoryOp {
        HistoryOp { client, op, invoke, ret }
    }

    const PUT1: KvOp = KvOp::Put { key: 1, value: 1 };
    const PUT2: KvOp = KvOp::Put { key: 1, value: 2 };
    const GET: KvOp = KvOp::Get { key: 1 };

    fn check_cases(cases: &[(&str, Vec<HistoryOp>, bool)]) {
        for (name, history, linearizable) in cases {
            assert_eq!(check(history).is_ok(), *linearizable, "{name}");
        }
    }

    #[test]
    fn hand_made_histories() {
        use KvResult::{Done, Swapped, Value};
        check_cases(&[
            ("empty", vec![], true),
            ("read of the initial value", vec![op(0, GET, 1, Some((2, Value(0))))], true),
            ("read of a value never written", vec![op(0, GET, 1, Some((2, Value(7))))], false),
            ("sequential write then read", vec![op(0, PUT1, 1, Some((2, Done))), op(1, GET, 3, Some((4, Value(1))))], true),
            ("stale read after an acknowledged write", vec![op(0, PUT1, 1, Some((2, Done))), op(1, GET, 3, Some((4, Value(0))))], false),
            (
                "concurrent read may see either",
                vec![op(0, PUT1, 1, Some((4, Done))), op(1, GET, 2, Some((3, Value(0)))), op(2, GET, 5, Some((6, Value(1))))],
                true,
            ),
            (
                "reads disagree on order (new then old)",
                vec![
                    op(0, PUT1, 1, Some((10, Done))),
                    op(1, GET, 2, Some((3, Value(1)))),
                    op(2, GET, 4, Some((5, Value(0)))),
                ],
                false,
            ),
            ("timed-out write may have happened", vec![op(0, PUT1, 1, None), op(1, GET, 5, Some((6, Value(1))))], true),
            ("timed-out write may not have happened", vec![op(0, PUT1, 1, None), op(1, GET, 5, Some((6, Value(0))))], true),
            (
                "timed-out write cannot flicker",
                vec![op(0, PUT1, 1, None), op(1, GET, 5, Some((6, Value(1)))), op(2, GET, 7, Some((8, Value(0))))],
                false,
            ),
            (
                "lost acknowledged write",
                vec![op(0, PUT1, 1, Some((2, Done))), op(0, PUT2, 3, Some((4, Done))), op(1, GET, 5, Some((6, Value(1))))],
                false,
            ),
            (
                "cas sees the last write",
                vec![op(0, PUT1, 1, Some((2, Done))), op(1, KvOp::Cas { key: 1, from: 1, to: 3 }, 3, Some((4, Swapped(true))))],
                true,
            ),
            (
                "cas cannot succeed twice from one value",
                vec![
                    op(0, KvOp::Cas { key: 1, from: 0, to: 5 }, 1, Some((10, Swapped(true)))),
                    op(1, KvOp::Cas { key: 1, from: 0, to: 6 }, 2, Some((11, Swapped(true)))),
                ],
                false,
            ),
            (
                "keys are independent",
                vec![op(0, PUT1, 1, Some((2, Done))), op(1, KvOp::Get { key: 2 }, 3, Some((4, Value(0))))],
                true,
            ),
        ]);
    }

    /// A history linearizable by construction: each client runs its operations one after another;
    /// each operation takes effect at a random point inside its interval, in that order.
    fn random_linearizable_history(seed: u64, clients: u32, ops: usize) -> Vec<HistoryOp> {
        let mut prng = engine::rng::Prng::new(seed);
        // (point, client, invoke, return) with intervals per client back to back.
        let mut free_at = vec![0u64; clients as usize];
        let mut planned = Vec::new();
        for _ in 0..ops {
            let client = prng.below(clients as u64) as u32;
            let invoke = free_at[client as usize] + 1 + prng.below(20);
            let ret = invoke + 1 + prng.below(60);
            let point = invoke * 2 + 1 + prng.below((ret - invoke) * 2 - 1);
            free_at[client as usize] = ret;
            let key = prng.below(2) as u8;
            let op = match prng.below(3) {
                0 => KvOp::Put { key, value: prng.below(4) },
                1 => KvOp::Get { key },
                _ => KvOp::Cas { key, from: prng.below(4), to: prng.below(4) },
            };
            planned.push((point, client, invoke * 2, ret * 2, op));
        }
        planned.sort_by_key(|p| p.0);
        let mut values = [0u64; 2];
        let mut history: Vec<HistoryOp> = planned
            .into_iter()
            .map(|(_, client, invoke, ret, op)| {
                let (next, result) = step(values[op.key() as usize], op);
                values[op.key() as usize] = next;
                HistoryOp { client, op, invoke, ret: Some((ret, result)) }
            })
            .collect();
        // Unique times: shift each event by its position.
        for (i, op) in history.iter_mut().enumerate() {
            op.invoke = op.invoke * 1000 + i as u64;
            op.ret = op.ret.map(|(at, r)| (at * 1000 + i as u64, r));
        }
        history
    }

    #[test]
    fn random_linearizable_histories_pass_and_corrupted_reads_are_caught() {
        let mut caught = 0;
        for seed in 0..200 {
            let mut history = random_linearizable_history(seed, 5, 300);
            assert!(check(&history).is_ok(), "seed {seed}");
            // A read that returns a value no one ever wrote cannot be linearized.
            if let Some(read) = history.iter_mut().find(|op| matches!(op.op, KvOp::Get { .. })) {
                read.ret = read.ret.map(|(at, _)| (at, KvResult::Value(99)));
                caught += usize::from(check(&history).is_err());
            }
        }
        assert_eq!(caught, 200);
    }
}
