//! Elections: pre-vote, vote, check-quorum and the leader lease that makes voters ignore a
//! disruptive candidate, and the transitions between roles.

use crate::node::RawNode;
use crate::progress::Progress;
use crate::storage::Storage;
use crate::types::{Body, Entry, EntryKind, Index, NodeId, Role, Term};

impl<S: Storage> RawNode<S> {
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        // Learners and removed nodes never campaign.
        if self.election_elapsed >= self.election_timeout && self.membership.is_voter(self.config.id) {
            self.campaign(self.config.pre_vote, false);
        }
    }

    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            // A transfer that did not finish within an election timeout is abandoned.
            self.transferee = None;
            if self.config.check_quorum && !self.quorum_recently_active() {
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.heartbeat_pending = true;
        }
    }

    /// Check-quorum: did a quorum (this node included) answer since the last round? Resets the
    /// marks for the next round.
    fn quorum_recently_active(&mut self) -> bool {
        let mut active = 1;
        for (id, progress) in self.progress.iter_mut() {
            if progress.recent_active && self.membership.is_voter(*id) {
                active += 1;
            }
            progress.recent_active = false;
        }
        active >= self.quorum()
    }

    /// A follower that heard from a leader within the minimum election timeout refuses to help
    /// depose it: the leader is alive as far as it knows.
    ///
    /// With lease reads, a node that just started refuses too: before it crashed it may have
    /// acknowledged a heartbeat that a leader's lease counts on.
    pub(crate) fn in_lease(&self) -> bool {
        let election_ticks = self.config.election_ticks;
        let just_started = self.config.lease_read && self.ticks < election_ticks as u64;
        self.config.check_quorum && (self.leader.is_some() || just_started) && self.election_elapsed < election_ticks
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let ticks = self.config.election_ticks as u64;
        self.election_timeout = self.prng.range(ticks, 2 * ticks - 1) as u32;
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_election_timer();
        self.progress.clear();
        self.votes.clear();
        self.transferee = None;
        self.append_pending = false;
        self.heartbeat_pending = false;
        self.reads_dropped.extend(self.reads.drain_contexts());
    }

    /// Starts a campaign: a pre-vote (no term change, nothing to persist) or a real election.
    pub(crate) fn campaign(&mut self, pre_vote: bool, transfer: bool) {
        if !self.membership.is_voter(self.config.id) {
            return;
        }
        self.become_follower(self.term, None);
        let campaign_term = self.term + 1;
        if pre_vote {
            self.role = Role::PreCandidate;
        } else {
            self.term = campaign_term;
            self.vote = Some(self.config.id);
            self.role = Role::Candidate;
        }
        self.votes.push((self.config.id, true));
        if self.tally() >= self.quorum() {
            self.win_campaign();
            return;
        }
        let last_index = self.log.last_index();
        let last_term = self.log.last_term();
        for peer in self.voter_peers() {
            let body = if pre_vote {
                Body::PreVote { last_index, last_term }
            } else {
                Body::Vote { last_index, last_term, transfer }
            };
            self.send(peer, campaign_term, body);
        }
    }

    fn tally(&self) -> usize {
        self.votes.iter().filter(|(_, granted)| *granted).count()
    }

    fn win_campaign(&mut self) {
        match self.role {
            Role::PreCandidate => self.campaign(false, false),
            Role::Candidate => self.become_leader(),
            Role::Follower | Role::Leader => unreachable!("won a campaign as {:?}", self.role),
        }
    }

    fn become_leader(&mut self) {
        assert!(self.role == Role::Candidate);
        assert!(self.vote == Some(self.config.id));
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let next_index = self.log.last_index() + 1;
        for peer in self.peers() {
            self.progress.insert(peer, Progress::new(next_index));
        }
        // Raft §5.4.2: entries of earlier terms commit only under one of this term.
        let noop = Entry { term: self.term, index: next_index, kind: EntryKind::Noop, payload: Vec::new().into() };
        self.log.append(vec![noop]);
        self.append_pending = true;
        if self.maybe_commit() {
            self.append_pending = true;
        }
    }

    pub(crate) fn on_vote_request(&mut self, from: NodeId, term: Term, last_index: Index, last_term: Term, pre_vote: bool) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let up_to_date = self.log.is_up_to_date(last_index, last_term) || self.config.bugs.vote_ignores_log;
        let granted = can_vote && up_to_date;
        if granted && !pre_vote {
            assert!(term == self.term);
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        // A granted pre-vote answers in the term it asked about; a refusal tells ours.
        let answer_term = if granted { term } else { self.term };
        let body = if pre_vote { Body::PreVoteResponse { granted } } else { Body::VoteResponse { granted } };
        self.send(from, answer_term, body);
    }

    pub(crate) fn on_vote_response(&mut self, from: NodeId, term: Term, granted: bool, pre_vote: bool) {
        let expected_role = if pre_vote { Role::PreCandidate } else { Role::Candidate };
        if self.role != expected_role {
            return;
        }
        // Pre-vote grants come in the campaign term (ours + 1), refusals in ours.
        let campaign_term = if pre_vote { self.term + 1 } else { self.term };
        if granted && term != campaign_term {
            return;
        }
        if self.votes.iter().any(|(voter, _)| *voter == from) || !self.membership.is_voter(from) {
            return;
        }
        self.votes.push((from, granted));
        let refused = self.votes.len() - self.tally();
        if self.tally() >= self.quorum() {
            self.win_campaign();
        } else if refused >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }
}
