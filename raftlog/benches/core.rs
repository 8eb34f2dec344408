//! The Raft core's own cost, with storage and network taken out: a 3-node group in one thread
//! over `MemStorage`, every write acknowledged at once, every message delivered at once. What a
//! batch of proposals costs from `propose` to commit on the leader, per entry; the durable log and
//! the network add their own costs on top (measured later by `corestore bench raft`).
//!
//! Run: `cargo bench -p raftlog --bench core` (add `-- --quick` for a fast look).

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raftlog::{Config, MemStorage, Message, RawNode, Role, Storage};

/// Payload of one entry: a small object write's metadata.
const ENTRY_BYTES: usize = 128;
/// Proposals per batch: one request alone, and what a busy loop turn gathers.
const BATCH_SIZES: [usize; 3] = [1, 64, 1024];

struct Group {
    nodes: Vec<RawNode<MemStorage>>,
    queue: VecDeque<Message>,
}

impl Group {
    fn new() -> Group {
        let voters = vec![1, 2, 3];
        let nodes = voters.iter().map(|&id| RawNode::new(Config::new(id, 1, voters.clone(), id), MemStorage::new())).collect();
        let mut group = Group { nodes, queue: VecDeque::new() };
        while group.nodes[0].role() != Role::Leader {
            group.nodes[0].tick();
            group.settle();
        }
        group
    }

    fn process(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            let ready = self.nodes[i].take_ready();
            let node = &mut self.nodes[i];
            if let Some(hard_state) = ready.hard_state {
                node.storage_mut().set_hard_state(hard_state);
            }
            node.storage_mut().append(&ready.entries);
            if let Some(last) = ready.entries.last() {
                node.on_persisted(last.index, last.term);
            }
            self.queue.extend(ready.messages);
            self.queue.extend(ready.messages_after_persist);
        }
    }

    fn settle(&mut self) {
        for i in 0..self.nodes.len() {
            self.process(i);
        }
        while let Some(message) = self.queue.pop_front() {
            let to = (message.to - 1) as usize;
            if self.nodes[to].step(message).is_ok() {
                self.process(to);
            }
        }
    }

    /// Proposes `batch` entries and runs the group until the leader committed them.
    fn replicate(&mut self, batch: usize, payload: &[u8]) {
        let payloads = (0..batch).map(|_| payload.into()).collect();
        let range = self.nodes[0].propose(payloads).unwrap_or_else(|e| panic!("leader refused: {e}"));
        self.settle();
        assert!(self.nodes[0].commit_index() >= range.end - 1);
        // Keep the in-memory log from growing without bound across iterations.
        let applied = self.nodes[0].applied_index();
        if applied > 100_000 {
            for node in &mut self.nodes {
                let at = node.applied_index();
                let membership = node.membership_at(at);
                if at > node.storage().snapshot_meta().index {
                    node.storage_mut().compact(at, membership, Vec::new().into());
                }
            }
        }
    }
}

fn replicate(c: &mut Criterion) {
    let payload = vec![7u8; ENTRY_BYTES];
    let mut bench = c.benchmark_group("raft/propose-to-commit/3-nodes");
    for batch in BATCH_SIZES {
        bench.throughput(Throughput::Elements(batch as u64));
        bench.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut group = Group::new();
            b.iter(|| group.replicate(black_box(batch), &payload));
        });
    }
    bench.finish();
}

criterion_group!(benches, replicate);
criterion_main!(benches);
