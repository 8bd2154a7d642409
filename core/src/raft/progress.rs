//! A leader's view of each follower (how far its log matches, what to send next) and
//! replication: appends, heartbeats, snapshots for a follower too far behind, and the commit
//! index moved to what a quorum holds.

use super::*;

/// What the leader knows of one follower's log.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Progress {
    pub(super) matched: Index,
    pub(super) next: Index,
    pub(super) active: bool,
}

impl Raft {
    /// A follower's answer to an append (a leader's business only).
    pub(super) fn step_leader(&mut self, m: Message) {
        let MsgKind::AppendResp {
            success,
            match_index,
            hint,
            read_ctx,
        } = m.kind
        else {
            return;
        };
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.progress.get_mut(&m.from) {
            p.active = true;
        }
        if let Some(ctx) = read_ctx {
            for r in self.reads.iter_mut().filter(|r| r.ctx <= ctx) {
                r.acks.insert(m.from);
            }
            self.maybe_release_reads();
        }
        let last = self.last_index();
        let p = self.progress.get_mut(&m.from).expect("peer");
        if success {
            if match_index > p.matched {
                p.matched = match_index;
            }
            p.next = p.next.max(match_index + 1);
            self.maybe_commit();
            if self.progress[&m.from].next <= last {
                self.send_append(m.from, None);
            }
        } else {
            // Back off to the follower's hint (never below 1, never up).
            let new_next = hint.max(1).min(p.next.saturating_sub(1).max(1));
            if new_next < p.next {
                p.next = new_next;
                self.send_append(m.from, None);
            }
        }
    }

    pub(super) fn broadcast_append(&mut self, read_ctx: Option<u64>) {
        for p in self.others() {
            self.send_append(p, read_ctx);
        }
    }

    pub(super) fn send_append(&mut self, to: NodeId, read_ctx: Option<u64>) {
        let next = self.progress[&to].next.max(1);
        let prev_index = next - 1;
        if prev_index < self.snap.index {
            // The entries it needs are compacted: send the snapshot, and go on after it.
            let snapshot = self.snap.clone();
            self.progress.get_mut(&to).expect("peer").next = snapshot.index + 1;
            self.send(to, MsgKind::InstallSnapshot { snapshot });
            return;
        }
        let prev_term = self.term_at(prev_index).unwrap_or(0);
        let end = self
            .last_index()
            .min(prev_index + self.config.max_append_entries as Index);
        let entries = self.log[self.pos(prev_index + 1)..self.pos(end + 1)].to_vec();
        let commit = self.commit;
        self.send(
            to,
            MsgKind::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_ctx,
            },
        );
    }

    pub(super) fn maybe_commit(&mut self) {
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        // Only entries of the current term commit by counting replicas (Raft §5.4.2).
        if candidate > self.commit && self.term_at(candidate) == Some(self.term) {
            self.commit = candidate;
            let waiting = std::mem::take(&mut self.pending_reads_without_leader_commit);
            for ctx in waiting {
                self.start_read(ctx);
            }
        }
    }
}
