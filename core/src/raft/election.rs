//! Elections: pre-votes (a node cut off cannot disrupt a healthy leader), votes, and the
//! tally that makes a candidate leader.

use super::*;

impl Raft {
    /// A vote or pre-vote, or an answer to one (any role).
    pub(super) fn step_election(&mut self, m: Message) {
        match m.kind {
            MsgKind::PreVote {
                last_index,
                last_term,
            } => {
                let fresh_leader =
                    self.leader.is_some() && self.election_elapsed < self.config.election_ticks;
                let granted =
                    m.term > self.term && !fresh_leader && self.log_ok(last_index, last_term);
                self.msgs.push(Message {
                    from: self.id,
                    to: m.from,
                    term: if granted { m.term } else { self.term },
                    kind: MsgKind::PreVoteResp { granted },
                });
            }
            MsgKind::Vote {
                last_index,
                last_term,
            } => {
                let can_vote = self.voted_for.is_none() || self.voted_for == Some(m.from);
                let granted = can_vote && self.log_ok(last_index, last_term);
                if granted {
                    self.voted_for = Some(m.from);
                    self.reset_election_timeout();
                }
                self.send(m.from, MsgKind::VoteResp { granted });
            }
            MsgKind::PreVoteResp { granted } if self.role == Role::PreCandidate => {
                if !granted && m.term > self.term {
                    self.become_follower(m.term, None);
                    return;
                }
                self.tally(m.from, granted, true);
            }
            MsgKind::VoteResp { granted } if self.role == Role::Candidate => {
                self.tally(m.from, granted, false);
            }
            _ => {}
        }
    }

    pub(super) fn campaign(&mut self, pre: bool) {
        self.votes.clear();
        self.leader = None;
        self.reset_election_timeout();
        let (last_index, last_term) = (self.last_index(), self.last_term());
        if pre {
            self.role = Role::PreCandidate;
        } else {
            self.role = Role::Candidate;
            self.term += 1;
            self.voted_for = Some(self.id);
        }
        self.votes.insert(self.id, true);
        if self.votes.len() >= self.quorum() {
            return self.on_won(pre);
        }
        for p in self.others() {
            let kind = if pre {
                MsgKind::PreVote {
                    last_index,
                    last_term,
                }
            } else {
                MsgKind::Vote {
                    last_index,
                    last_term,
                }
            };
            // A pre-vote asks as if for the next term, without taking it.
            let term = if pre { self.term + 1 } else { self.term };
            self.msgs.push(Message {
                from: self.id,
                to: p,
                term,
                kind,
            });
        }
    }

    pub(super) fn on_won(&mut self, pre: bool) {
        if pre {
            self.campaign(false);
        } else {
            self.become_leader();
        }
    }

    pub(super) fn tally(&mut self, from: NodeId, granted: bool, pre: bool) {
        self.votes.insert(from, granted);
        let yes = self.votes.values().filter(|v| **v).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            self.on_won(pre);
        } else if no >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }
}
