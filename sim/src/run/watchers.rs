//! The built-in watchers: following `/r` by watch and by change callback, recording every
//! change they receive (S16) and how far each stream got (for L5 after the heal).

use super::*;
use crate::world::Context;
use std::time::Duration;
use tenure_core::ClientError;
use tenure_core::{Command, Outcome};

/// The register prefix the watchers watch.
pub(crate) const WATCHED: &str = "/r";

/// A watcher follows `/r` and every key under it on two streams, recording every change it
/// receives (S16): a watch (it reads the revision, then asks for the events after it; when
/// the agency no longer keeps the events it needs, `Compacted`, it starts again from a fresh
/// read, recorded as a new start), and a change callback (an observer registration, from the
/// revision it applied at, whose notifications it pulls). Runs until the run ends. Written
/// against the public [`Context`] and its [`crate::world::Log`].
pub(crate) async fn watcher(ctx: Context) {
    let c = ctx.clone();
    ctx.clock()
        .spawn(Box::pin(async move { callbacks(&c).await }));
    let log = ctx.log();
    let store = ctx.store();
    let prefix = key(WATCHED);
    let mut after = None;
    loop {
        let from = match after {
            Some(a) => a,
            None => match store.read(&prefix).await {
                Ok(r) => {
                    log.watch_start("watch", WATCHED, r.revision);
                    r.revision
                }
                Err(_) => {
                    ctx.sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match store.wait_events(&prefix, from).await {
            Ok(events) => {
                let mut last = from;
                for e in &events {
                    log.watched("watch", &e.key.to_string(), e.revision, e.version);
                    last = last.max(e.revision);
                }
                after = Some(last);
            }
            Err(ClientError::Compacted { .. }) => after = None,
            Err(_) => {
                after = Some(from);
                ctx.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The callback stream of a watcher: registers `http://watcher-<process>/cb` as an observer
/// of `/r` (until that commits), then records each notification pulled for it.
pub(crate) async fn callbacks(ctx: &Context) {
    let url = format!("http://watcher-{}/cb", ctx.id());
    let observe = Command::Observe {
        key: key(WATCHED),
        url: url.clone(),
    };
    let store = ctx.store();
    let from = loop {
        match store.submit(observe.clone()).await {
            Ok(Outcome::Observed { revision, .. }) => break revision,
            _ => ctx.sleep(Duration::from_millis(100)).await,
        }
    };
    let log = ctx.log();
    log.watch_start("callback", WATCHED, from);
    let mut inbox = ctx.callbacks_after(&url, from);
    while let Some(e) = futures::StreamExt::next(&mut inbox).await {
        log.watched("callback", &e.key.to_string(), e.revision, e.version);
    }
}
