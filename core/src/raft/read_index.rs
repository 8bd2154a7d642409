//! Linearizable reads by read index: a read waits until a quorum has confirmed, after it was
//! registered, that this node still leads, and until the commit index it saw is applied.

use super::*;

/// A read waiting for its quorum round.
pub(super) struct PendingRead {
    pub(super) ctx: u64,
    pub(super) index: Index,
    pub(super) acks: BTreeSet<NodeId>,
}

impl Raft {
    /// Asks for a linearizable read tagged `ctx`; a `ReadState` with the same `ctx` comes
    /// out of `ready()` once the read may be served (after its index is applied).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        // A leader knows the commit index only once an entry of its own term has committed.
        if self.term_at(self.commit) != Some(self.term) {
            self.pending_reads_without_leader_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    pub(super) fn start_read(&mut self, ctx: u64) {
        let mut acks = BTreeSet::new();
        acks.insert(self.id);
        self.reads.push(PendingRead {
            ctx,
            index: self.commit,
            acks,
        });
        self.maybe_release_reads();
        if !self.reads.is_empty() {
            self.read_round = Some(self.read_round.map_or(ctx, |c| c.max(ctx)));
        }
    }

    pub(super) fn maybe_release_reads(&mut self) {
        let q = self.quorum();
        let (done, pending): (Vec<_>, Vec<_>) =
            self.reads.drain(..).partition(|r| r.acks.len() >= q);
        self.reads = pending;
        self.ready_reads.extend(done.into_iter().map(|r| ReadState {
            ctx: r.ctx,
            index: r.index,
        }));
    }
}
