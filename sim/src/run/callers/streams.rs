//! The seed callers' two streams on `/kv/w`: hmetcd's callback watch and the agency API's
//! change callbacks, each start and change logged for S16 and L5.

use super::*;

/// Starts the callback watch on `w` from a revision read first, logging the stream's start
/// and every change it delivers (a compaction notice starts it again).
pub(super) async fn start_kv_watch(ctx: &Context, kv: &Kvs) -> Option<WatchHandle> {
    let from = ctx.store().read(&key(WATCHED_KV)).await.ok()?.revision;
    let log = ctx.log();
    log.watch_start(KV_STREAM, WATCHED_KV, from);
    let (l, c) = (log.clone(), ctx.clone());
    let cb = Box::new(move |e: &tenure_core::kv::WatchEvent| {
        if e.change == KeyChange::Compacted {
            c.sometimes("caller watch told of compaction");
            l.watch_start(KV_STREAM, WATCHED_KV, e.revision);
        } else {
            l.watched(KV_STREAM, WATCHED_KV, e.revision, e.version);
        }
        true
    });
    kv.watch_events("w", KeyChange::Put, Some(from), cb)
        .await
        .ok()
}

/// The agency API's change callbacks on `w`: registered under a fresh address, followed for
/// a few seconds, unregistered, and again, while the workload runs; after it, followed on.
pub(super) async fn agency_stream(ctx: &Context) {
    let api = ctx.agency();
    let log = ctx.log();
    let k: Key = key(WATCHED_KV);
    for round in 1u64.. {
        let url = format!("http://caller-{}/cb{round}", ctx.id());
        let from = match api.register_change_callback_from(&k, &url).await {
            Ok(r) => r,
            Err(_) => {
                ctx.sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        log.watch_start(AGENCY_STREAM, WATCHED_KV, from);
        let mut inbox = Box::pin(ctx.callbacks_after(&url, from));
        let until = ctx.now() + Duration::from_millis(2_000 + ctx.random() % 4_000);
        let clock = ctx.clock();
        loop {
            if !ctx.workload_running() {
                // Followed to the end: the runner checks the last change reaches it (L5).
                while let Some(e) = futures::StreamExt::next(&mut inbox).await {
                    log.watched(AGENCY_STREAM, WATCHED_KV, e.revision, e.version);
                }
                return;
            }
            let left = until.saturating_sub(ctx.now());
            if left.is_zero() {
                break;
            }
            let next = futures::StreamExt::next(&mut inbox);
            match tenure_core::clock::timeout(&*clock, left.min(Duration::from_millis(500)), next)
                .await
            {
                Some(Some(e)) => log.watched(AGENCY_STREAM, WATCHED_KV, e.revision, e.version),
                Some(None) => break,
                None => {}
            }
        }
        if api.unregister_change_callback(&k, &url).await.is_ok() {
            ctx.sometimes("caller re-registered its change callback");
        }
    }
}
