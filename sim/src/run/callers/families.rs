//! The seed callers' Juju lease, Storage, leadership and agency-health calls.

use super::*;

impl Caller {
    pub(super) async fn claim(&mut self) {
        let client = self.ctx.lease_client();
        let request = Request::new(&self.me, self.cfg.lock_ttl);
        let extend = self.ctx.random().is_multiple_of(2);
        let f = if extend {
            "extend_lease"
        } else {
            "claim_lease"
        };
        let lease = key(&format!("/lease/{SEED_LEASE}"));
        // Recorded as claims; an `Invalid` answer (held, or not held by this caller) is
        // left out: it is not the claimer's "denied", which needs another holder.
        op(&self.ctx, "claim", &lease, json!(f), async {
            let r = if extend {
                client.extend_lease(SEED_LEASE, request).await
            } else {
                client.claim_lease(SEED_LEASE, request).await
            };
            r.map(|t| json!(t))
        })
        .await;
    }

    pub(super) async fn check_lease(&mut self) {
        let client = self.ctx.lease_client();
        let lease = key(&format!("/lease/{SEED_LEASE}"));
        let (res, out) = op(&self.ctx, "check", &lease, json!("refresh"), async {
            client.refresh().await?;
            let mine = client
                .leases()
                .get(SEED_LEASE)
                .is_some_and(|i| i.holder == self.me);
            Ok::<_, LeaseError>(Value::Bool(mine))
        })
        .await;
        if (res, out) == (Completion::Ok, Value::Bool(true)) {
            self.ctx.sometimes("caller saw itself hold the seed lease");
        }
    }

    pub(super) async fn expire_lease(&mut self) {
        let client = self.ctx.lease_client();
        let lease = key(&format!("/lease/{SEED_LEASE}"));
        op(
            &self.ctx,
            "wait_vacant",
            &lease,
            json!("expire_lease"),
            async { client.expire_lease(SEED_LEASE).await.map(|_| Value::Null) },
        )
        .await;
    }

    /// A lease without keep-alive and a record bound to it: the record lives until the
    /// lease's TTL runs out (the system's expiry).
    pub(super) async fn leased_record(&mut self) {
        let storage = self.ctx.storage();
        let ttl = self.cfg.lock_ttl;
        let (res, out) = op(
            &self.ctx,
            "new_lease",
            &key("/lessor"),
            json!(ttl.as_millis() as u64),
            async {
                let l = storage.lessor().new_lease(ttl, false).await?;
                Ok::<_, StorageError>(json!(l.id()))
            },
        )
        .await;
        let (Completion::Ok, Some(id)) = (res, out.as_i64()) else {
            return;
        };
        let name = format!("c{}-{}", self.ctx.id(), self.n);
        let value = json!(self.unique());
        let (res, _) = op(
            &self.ctx,
            "create",
            &key(&format!("/storage/{name}")),
            json!({"value": value}),
            async {
                let mut r = Record::new(&name, value.clone());
                r.lease = id;
                storage.create(r).await.map(|v| json!(v))
            },
        )
        .await;
        if res == Completion::Ok {
            self.records.push((name, id));
            self.records.drain(..self.records.len().saturating_sub(4));
        }
    }

    /// `get_lease` and `Lease::ttl` of the newest leased record's lease, or its release
    /// (which deletes the record bound to it: recorded as that delete).
    pub(super) async fn lease_ttl_or_release(&mut self) {
        let Some((name, id)) = self.records.last().cloned() else {
            return;
        };
        let storage = self.ctx.storage();
        if self.ctx.random().is_multiple_of(2) {
            op(&self.ctx, "lease_ttl", &key("/lessor"), json!(id), async {
                let l = storage.lessor().get_lease(id).await?;
                l.ttl().await.map(|t| json!(t.as_millis() as u64))
            })
            .await;
        } else {
            let path = key(&format!("/storage/{name}"));
            let (res, _) = op(&self.ctx, "delete", &path, json!("release"), async {
                let l = storage.lessor().get_lease(id).await?;
                l.release().await.map(|_| Value::Null)
            })
            .await;
            if res == Completion::Ok {
                self.records.pop();
            }
        }
    }

    /// Storage's `get_range` over this caller's records (one read of them all, S14), then a
    /// `delete` of the oldest.
    pub(super) async fn storage_range_and_delete(&mut self) {
        let storage = self.ctx.storage();
        let (start, end) = (
            format!("c{}-", self.ctx.id()),
            format!("c{}.", self.ctx.id()),
        );
        // Storage's range is inclusive: [start, end] is the keys up to end itself.
        let input =
            json!({"from": format!("/storage/{start}"), "to": format!("/storage/{end}\u{0}")});
        let path = key(&format!("/storage/{start}"));
        op(&self.ctx, "storage_get_range", &path, input, async {
            let rs = storage.get_range(&start, &end).await?;
            Ok::<_, StorageError>(Value::Array(
                rs.into_iter()
                    .map(|r| json!({"key": format!("/storage/{}", r.key), "value": r.value, "version": r.version}))
                    .collect(),
            ))
        })
        .await;
        if self.records.is_empty() {
            return;
        }
        let (name, _) = self.records.remove(0);
        op(
            &self.ctx,
            "delete",
            &key(&format!("/storage/{name}")),
            Value::Null,
            async { storage.delete(&name).await.map(|_| Value::Null) },
        )
        .await;
    }

    /// Leadership of the service `seed-app`: a claim, a check, or a wait for its release
    /// that a `Manager::stop` from another task may end (`Stopped`: surely no vacancy seen).
    pub(super) async fn leadership(&mut self) {
        let Ok(m) = self.ctx.leadership() else {
            return;
        };
        let m = std::sync::Arc::new(m);
        let path = key(&format!("/lease/{SEED_SERVICE}"));
        match self.ctx.random() % 3 {
            0 => {
                let d = self.cfg.lock_ttl;
                op(&self.ctx, "claim_leadership", &path, Value::Null, async {
                    match m.claim_leadership(SEED_SERVICE, &self.me, d).await {
                        Ok(t) => Ok(json!(t)),
                        Err(LeadershipError::ClaimDenied) => Ok(json!("denied")),
                        Err(e) => Err(e),
                    }
                })
                .await;
            }
            1 => {
                op(&self.ctx, "check_leadership", &path, Value::Null, async {
                    match m.check_leadership(SEED_SERVICE, &self.me).await {
                        Ok(_) => Ok(Value::Bool(true)),
                        Err(LeadershipError::NotLeader { .. }) => Ok(Value::Bool(false)),
                        Err(e) => Err(e),
                    }
                })
                .await;
            }
            _ => {
                let (stopper, c) = (m.clone(), self.ctx.clone());
                let after = Duration::from_millis(self.ctx.random() % 1_000);
                self.ctx.clock().spawn(Box::pin(async move {
                    c.sleep(after).await;
                    stopper.stop();
                }));
                let (res, out) = op(
                    &self.ctx,
                    "block_until_released",
                    &path,
                    Value::Null,
                    async {
                        m.block_until_leadership_released(SEED_SERVICE)
                            .await
                            .map(|_| Value::Null)
                    },
                )
                .await;
                if res == Completion::Fail && out.as_str().is_some_and(|e| e.contains("stopped")) {
                    self.ctx.sometimes("caller's stop ended a leadership wait");
                }
            }
        }
    }

    pub(super) async fn health(&mut self) {
        let api = self.ctx.agency();
        op(
            &self.ctx,
            "are_agents_healthy",
            &key("/"),
            Value::Null,
            async {
                api.are_agents_healthy(true)
                    .await
                    .map(|l| json!(l))
                    .map_err(|e| {
                        AgencyError::Client(tenure_core::ClientError::Unavailable(e.to_string()))
                    })
            },
        )
        .await;
    }
}
