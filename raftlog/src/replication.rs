//! Log replication: the leader's batched, pipelined AppendEntries with fast back-off, the
//! follower's side of it, commit, and leadership transfer.

use crate::config::{APPEND_BYTES_MAX, APPEND_ENTRIES_MAX};
use crate::error::{ProposeError, StepError};
use crate::membership::Membership;
use crate::node::RawNode;
use crate::progress::ProgressState;
use crate::storage::{Storage, StorageError};
use crate::types::{Body, Entry, EntryKind, Index, NodeId, Payload, RejectHint, Role, SnapshotChunk, SnapshotMeta};

impl<S: Storage> RawNode<S> {
    /// Advances the commit index to what a quorum holds durably. Returns whether it moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        assert!(self.role == Role::Leader);
        let own = if self.config.bugs.leader_counts_unpersisted { self.log.last_index() } else { self.log.persisted };
        let membership = &self.membership;
        let mut matched: Vec<Index> =
            self.progress.iter().filter(|(id, _)| membership.is_voter(**id)).map(|(_, p)| p.match_index).collect();
        matched.push(own);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_index = matched[self.quorum() - 1];
        if quorum_index <= self.log.committed {
            return false;
        }
        // Raft §5.4.2 (figure 8): only an entry of the current term commits by counting.
        if self.log.term(quorum_index) != Some(self.term) {
            return false;
        }
        self.log.commit_to(quorum_index);
        true
    }

    pub(crate) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, true);
        }
    }

    /// Sends `to` the entries it lacks, unless its window is full. `allow_empty` sends an empty
    /// AppendEntries (to carry the commit index or probe) when there is nothing new.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) {
        let Some(progress) = self.progress.get(&to) else { return };
        if progress.is_paused() {
            return;
        }
        let next = progress.next_index;
        let prev_index = next - 1;
        // Below the log's start the follower needs the snapshot; unavailable entries are
        // retried on the next heartbeat answer.
        if prev_index < self.log.snapshot_meta().index {
            self.send_snapshot(to);
            return;
        }
        let Some(prev_term) = self.log.term(prev_index) else { return };
        let last = self.log.last_index();
        let entries = if next <= last {
            let hi = (last + 1).min(next + APPEND_ENTRIES_MAX as Index);
            match self.log.entries(next, hi, APPEND_BYTES_MAX) {
                Ok(entries) => entries,
                Err(StorageError::Compacted { .. }) => {
                    self.send_snapshot(to);
                    return;
                }
                Err(StorageError::Unavailable { .. }) => return,
            }
        } else {
            Vec::new()
        };
        if entries.is_empty() && !allow_empty {
            return;
        }
        let sent_last = entries.last().map(|entry| entry.index);
        let commit = self.log.committed;
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.on_sent(sent_last);
        }
        self.send(to, self.term, Body::Append { prev_index, prev_term, entries, commit });
    }

    pub(crate) fn broadcast_heartbeat(&mut self) {
        let read_seq = self.reads.next_round(self.ticks);
        for peer in self.peers() {
            let Some(progress) = self.progress.get(&peer) else { continue };
            // The follower may commit this at once: it holds everything up to its match index.
            let commit = progress.match_index.min(self.log.committed);
            self.send(peer, self.term, Body::Heartbeat { commit, read_seq });
        }
    }

    pub(crate) fn on_append(&mut self, from: NodeId, prev_index: Index, prev_term: u64, entries: Vec<Entry>, commit: Index) {
        assert!(self.role == Role::Follower);
        if prev_index < self.log.committed {
            // Everything up to our commit index matches the leader's log already.
            let committed = self.log.committed;
            self.send(from, self.term, Body::AppendResponse { index: committed, reject: None });
            return;
        }
        if !self.log.matches(prev_index, prev_term) {
            let (index, term) = self.log.find_conflict_by_term(prev_index, prev_term);
            let reject = Some(RejectHint { index, term });
            self.send(from, self.term, Body::AppendResponse { index: prev_index, reject });
            return;
        }
        let carries_conf = entries.iter().any(|entry| entry.kind == EntryKind::ConfChange);
        let (last_new, cut) = if entries.is_empty() { (prev_index, None) } else { self.log.append_after_match(entries) };
        // A configuration is in force from the moment its entry is in the log, and ends when a
        // conflict cuts it out again.
        if carries_conf || cut.is_some_and(|at| at <= self.conf_index) {
            self.recompute_membership();
        }
        // Beyond `last_new` our log may still differ from the leader's.
        self.log.commit_to(commit.min(last_new));
        self.send(from, self.term, Body::AppendResponse { index: last_new, reject: None });
    }

    pub(crate) fn on_heartbeat(&mut self, from: NodeId, commit: Index, read_seq: u64) {
        assert!(self.role == Role::Follower);
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, self.term, Body::HeartbeatResponse { read_seq });
    }

    pub(crate) fn on_append_response(&mut self, from: NodeId, index: Index, reject: Option<RejectHint>) -> Result<(), StepError> {
        if index > self.log.last_index() {
            return Err(StepError::Malformed { kind: "AppendResponse", from, reason: "index beyond the leader's log" });
        }
        let Some(progress) = self.progress.get_mut(&from) else { return Ok(()) };
        progress.recent_active = true;
        match reject {
            Some(hint) => {
                // The follower's hint names its last entry of term <= the one we sent; skip
                // back over our entries of terms it cannot have (etcd's fast back-off).
                let next_probe =
                    if hint.term > 0 { self.log.find_conflict_by_term(hint.index, hint.term).0 } else { hint.index };
                let progress = self.progress.get_mut(&from).expect("checked above");
                if progress.on_reject(index, next_probe) {
                    self.send_append(from, true);
                }
            }
            None => {
                if progress.on_match(index) && self.maybe_commit() {
                    self.append_pending = true;
                }
                self.maybe_finish_transfer(from);
                self.send_append(from, false);
            }
        }
        Ok(())
    }

    pub(crate) fn on_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        let last = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        if let ProgressState::Snapshot { .. } = progress.state {
            // The chunk in flight or its answer may be lost: send it again.
            let offset = progress.snapshot_offset;
            self.send_snapshot_chunk(from, offset);
        }
        let Some(progress) = self.progress.get_mut(&from) else { return };
        // A lost probe is resent on the next heartbeat answer rather than waiting forever, and
        // a window full of lost appends lets one more through (etcd does the same).
        progress.probe_sent = false;
        if progress.state == ProgressState::Replicate && progress.is_paused() {
            progress.inflight.pop_front();
        }
        // An idle leader's only chance to repair appends lost in the replicate state: an
        // empty append past the follower's log draws a rejection with a hint.
        if progress.match_index < last {
            self.send_append(from, true);
        }
        if self.membership.is_voter(from) {
            if let Some(sent) = self.reads.sent_at(read_seq)
                && let Some(progress) = self.progress.get_mut(&from)
            {
                progress.lease_ack_tick = progress.lease_ack_tick.max(Some(sent));
            }
            let ready = self.reads.ack(from, read_seq, &self.membership);
            self.read_states.extend(ready);
        }
    }

    /// Hands leadership to `to` (graceful shutdown): once it has our whole log it is told to
    /// campaign at once. Proposals are refused meanwhile; abandoned after an election timeout.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        if !self.progress.contains_key(&to) || !self.membership.is_voter(to) {
            return Err(ProposeError::UnknownNode { to });
        }
        self.transferee = Some(to);
        self.election_elapsed = 0;
        self.maybe_finish_transfer(to);
        self.send_append(to, true);
        Ok(())
    }

    /// Who should take over from this leader: the voter other than itself whose log matches
    /// the most of ours (the lowest id among equals), so the transfer waits least for catching
    /// up. `None` if this node does not lead or is the only voter.
    pub fn transfer_target(&self) -> Option<NodeId> {
        if self.role != Role::Leader {
            return None;
        }
        let candidates = self.membership.voters.iter().filter(|&&v| v != self.config.id);
        let matched = candidates.filter_map(|&v| Some((self.progress.get(&v)?.match_index, v)));
        matched.max_by_key(|&(index, v)| (index, std::cmp::Reverse(v))).map(|(_, v)| v)
    }

    fn maybe_finish_transfer(&mut self, from: NodeId) {
        if self.transferee != Some(from) {
            return;
        }
        let Some(progress) = self.progress.get(&from) else { return };
        if progress.match_index == self.log.last_index() {
            // The transferee's votes ignore leases, so ours ends here.
            self.lease_blocked_until = self.ticks + 2 * self.config.election_ticks as u64;
            self.send(from, self.term, Body::TimeoutNow);
        }
    }

    fn send_snapshot(&mut self, to: NodeId) {
        let Ok(snapshot) = self.log.storage.snapshot() else { return };
        let Some(progress) = self.progress.get_mut(&to) else { return };
        progress.become_snapshot(snapshot.meta.index);
        self.send_snapshot_chunk(to, 0);
    }

    /// Sends the chunk of the current snapshot at `offset`. If a compaction replaced the
    /// snapshot meanwhile, streams the new one from the start.
    fn send_snapshot_chunk(&mut self, to: NodeId, offset: u64) {
        let Ok(snapshot) = self.log.storage.snapshot() else { return };
        let Some(progress) = self.progress.get_mut(&to) else { return };
        let ProgressState::Snapshot { index } = progress.state else { return };
        let mut offset = offset;
        if index != snapshot.meta.index || offset > snapshot.data.len() as u64 {
            progress.become_snapshot(snapshot.meta.index);
            offset = 0;
        }
        progress.snapshot_offset = offset;
        let start = offset as usize;
        let end = snapshot.data.len().min(start + self.config.snapshot_chunk_bytes);
        let data: Payload = snapshot.data[start..end].into();
        let done = end == snapshot.data.len();
        let membership = snapshot.membership;
        self.send(to, self.term, Body::InstallSnapshot { meta: snapshot.meta, membership, offset, data, done });
    }

    pub(crate) fn on_install_snapshot_response(&mut self, from: NodeId, index: Index, offset: u64) {
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        // Any offset but the one in flight: the follower moved on, or lost what it had.
        if progress.state == (ProgressState::Snapshot { index }) && offset != progress.snapshot_offset {
            self.send_snapshot_chunk(from, offset);
        }
    }

    /// A chunk of the leader's snapshot. Chunks go to the driver in order; the last one makes the
    /// snapshot the start of our log.
    pub(crate) fn on_install_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        membership: Membership,
        offset: u64,
        data: Payload,
        done: bool,
    ) {
        assert!(self.role == Role::Follower);
        if meta.index <= self.log.committed || self.log.matches(meta.index, meta.term) {
            // We have all of it already: an old or repeated snapshot, or one that raced with
            // the appends after it. Installing it would drop entries we may have acknowledged
            // (Raft §7: keep the entries that follow a matching snapshot point).
            self.log.commit_to(meta.index);
            let committed = self.log.committed;
            self.send(from, self.term, Body::AppendResponse { index: committed, reject: None });
            return;
        }
        let expected = match self.snapshot_receiving {
            Some((receiving, next)) if receiving == meta => next,
            _ => 0,
        };
        if offset != expected {
            self.send(from, self.term, Body::InstallSnapshotResponse { index: meta.index, offset: expected });
            return;
        }
        let next = offset + data.len() as u64;
        self.snapshot_chunks.push(SnapshotChunk { meta, offset, data, done });
        if done {
            self.snapshot_receiving = None;
            self.log.restore(meta);
            self.snapshot_membership_pending = Some(membership.clone());
            self.conf_index = 0;
            self.set_membership(membership);
            self.send(from, self.term, Body::AppendResponse { index: meta.index, reject: None });
        } else {
            self.snapshot_receiving = Some((meta, next));
            self.send(from, self.term, Body::InstallSnapshotResponse { index: meta.index, offset: next });
        }
    }
}
