//! The log: entries after the snapshot, their terms and positions, what is not yet persisted,
//! compaction, and a follower's side of replication (appends and snapshots from the leader).

use super::*;

impl Raft {
    /// The leader's append or snapshot: this node follows it.
    pub(super) fn step_follower(&mut self, m: Message) {
        match m.kind {
            MsgKind::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_ctx,
            } => {
                if self.role != Role::Follower {
                    self.become_follower(m.term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.heard_from_leader();
                self.handle_append(m.from, prev_index, prev_term, entries, commit, read_ctx);
            }
            MsgKind::InstallSnapshot { snapshot } => {
                if self.role != Role::Follower {
                    self.become_follower(m.term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.heard_from_leader();
                self.install_snapshot(m.from, snapshot);
            }
            _ => {}
        }
    }

    pub fn last_index(&self) -> Index {
        self.snap.index + self.log.len() as Index
    }

    /// The term of the last log entry (0 for an empty log).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(self.snap.term, |e| e.term)
    }

    /// The term of the entry at `index`; `None` if it is not in the log (beyond its end, or
    /// compacted into the snapshot, except the snapshot's own index).
    pub(super) fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else if index == self.snap.index {
            Some(self.snap.term)
        } else if index < self.snap.index {
            None
        } else {
            self.log.get(self.pos(index)).map(|e| e.term)
        }
    }

    /// Where the entry at `index` (after the snapshot) sits in `log`.
    pub(super) fn pos(&self, index: Index) -> usize {
        (index - self.snap.index - 1) as usize
    }

    /// Replaces the log up to `index` (applied by the caller) by a snapshot of the state
    /// machine there. Does nothing for an index not after the current snapshot or not yet
    /// applied.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        if index <= self.snap.index || index > self.applied {
            return;
        }
        let term = self.term_at(index).expect("an applied entry is in the log");
        let cut = self.pos(index) + 1;
        self.log.drain(..cut);
        self.snap = Snapshot { index, term, data };
        self.snap_unstable = Some(self.snap_unstable.unwrap_or(false));
        self.mark_unstable(index + 1);
    }

    pub(super) fn mark_unstable(&mut self, from: Index) {
        self.unstable_from = Some(self.unstable_from.map_or(from, |u| u.min(from)));
    }

    pub(super) fn append(&mut self, payload: Payload) -> Index {
        let index = self.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            payload: std::sync::Arc::new(payload),
        });
        self.mark_unstable(index);
        let id = self.id;
        if let Some(p) = self.progress.get_mut(&id) {
            p.matched = index;
            p.next = index + 1;
        }
        self.maybe_commit();
        index
    }

    pub(super) fn log_ok(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: Index,
        mut prev_term: Term,
        mut entries: Vec<Entry>,
        commit: Index,
        read_ctx: Option<u64>,
    ) {
        if prev_index < self.snap.index {
            // Entries up to our snapshot are committed, so they match the leader's: skip them.
            entries.retain(|e| e.index > self.snap.index);
            prev_index = self.snap.index;
            prev_term = self.snap.term;
        }
        let hint = match self.term_at(prev_index) {
            // We lack `prev_index`: retry from just after our last entry.
            None => Some(self.last_index() + 1),
            // Conflict: skip back over the whole conflicting term at once.
            Some(t) if t != prev_term => {
                let mut hint = prev_index;
                while hint > 1 && self.term_at(hint - 1) == Some(t) {
                    hint -= 1;
                }
                Some(hint.min(self.commit + 1).max(1))
            }
            Some(_) => None,
        };
        if let Some(hint) = hint {
            self.send(
                from,
                MsgKind::AppendResp {
                    success: false,
                    match_index: 0,
                    hint,
                    read_ctx,
                },
            );
            return;
        }
        let mut last_new = prev_index;
        for e in entries {
            last_new = e.index;
            match self.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > self.commit,
                        "a committed entry can never conflict"
                    );
                    let at = self.pos(e.index);
                    self.log.truncate(at);
                    self.mark_unstable(e.index);
                    self.log.push(e);
                }
                None => {
                    self.mark_unstable(e.index);
                    self.log.push(e);
                }
            }
        }
        if commit > self.commit {
            // `last_new` may lie below our commit index (a stale append): never move back.
            self.commit = self.commit.max(commit.min(last_new));
        }
        self.send(
            from,
            MsgKind::AppendResp {
                success: true,
                match_index: last_new,
                hint: 0,
                read_ctx,
            },
        );
    }

    pub(super) fn install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let index = snapshot.index;
        if index > self.commit {
            if self.term_at(index) == Some(snapshot.term) && index < self.last_index() {
                // Log matching: our entries up to `index` are the snapshot's; keep the rest.
                let cut = self.pos(index) + 1;
                self.log.drain(..cut);
            } else {
                self.log.clear();
            }
            self.snap = snapshot;
            self.snap_unstable = Some(true);
            self.commit = index;
            self.applied = index;
            self.mark_unstable(index + 1);
        }
        // Either way our log matches the leader's up to our commit index (now at least the
        // snapshot's).
        let match_index = self.commit;
        self.send(
            from,
            MsgKind::AppendResp {
                success: true,
                match_index,
                hint: 0,
                read_ctx: None,
            },
        );
    }
}
