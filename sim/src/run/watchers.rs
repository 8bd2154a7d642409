//! The built-in watchers: following `/r` by watch and by change callback, recording every
//! change they receive (S16) and how far each stream got (for L5 after the heal).

use super::*;
use crate::cluster::NetClient;
use crate::history::Event;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::ClientError;
use tenure_core::{Command, Outcome, StoreClient};

/// The register prefix the watchers watch.
pub(crate) const WATCHED: &str = "/r";

/// Per watcher process and stream (`watch`, `callback`), the last revision it received.
pub(crate) type Watched = Arc<Mutex<BTreeMap<(u64, &'static str), u64>>>;

/// Records a change a watcher received on `stream`.
pub(crate) fn record_watched(p: &Process, stream: &'static str, e: &tenure_core::command::Event) {
    p.rec.record(
        &p.node,
        Event::Watched {
            process: p.id,
            stream: stream.into(),
            key: e.key.to_string(),
            revision: e.revision,
            version: e.version,
        },
    );
}

/// Records that a watcher (re)started `stream` after revision `from`.
pub(crate) fn record_watch_start(p: &Process, stream: &'static str, from: u64) {
    p.rec.record(
        &p.node,
        Event::WatchStart {
            process: p.id,
            stream: stream.into(),
            key: WATCHED.into(),
            from,
        },
    );
}

/// A watcher follows `/r` and every key under it on two streams, recording every change it
/// receives (S16): a watch (it reads the revision, then asks for the events after it; when
/// the agency no longer keeps the events it needs, `Compacted`, it starts again from a fresh
/// read, recorded as a new start), and a change callback (an observer registration, from the
/// revision it applied at, whose notifications it pulls). Runs until the run ends.
pub(crate) async fn watcher(p: Process, store: Arc<NetClient>, seen: Watched) {
    let p = Arc::new(p);
    let (cp, cstore, cseen) = (p.clone(), store.clone(), seen.clone());
    madsim::task::spawn(async move { callbacks(&cp, &cstore, &cseen).await });
    let prefix = key(WATCHED);
    let mut after = None;
    loop {
        let from = match after {
            Some(a) => a,
            None => match store.read(&prefix).await {
                Ok(r) => {
                    record_watch_start(&p, "watch", r.revision);
                    r.revision
                }
                Err(_) => {
                    madsim::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match store.wait_events(&prefix, from).await {
            Ok(events) => {
                let mut last = from;
                for e in &events {
                    record_watched(&p, "watch", e);
                    last = last.max(e.revision);
                }
                seen.lock().unwrap().insert((p.id, "watch"), last);
                after = Some(last);
            }
            Err(ClientError::Compacted { .. }) => after = None,
            Err(_) => {
                after = Some(from);
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The callback stream of a watcher: registers `http://watcher-<process>/cb` as an observer
/// of `/r` (until that commits), then records each notification pulled for it.
pub(crate) async fn callbacks(p: &Process, store: &Arc<NetClient>, seen: &Watched) {
    let url = format!("http://watcher-{}/cb", p.id);
    let observe = Command::Observe {
        key: key(WATCHED),
        url: url.clone(),
    };
    let from = loop {
        match store.submit(observe.clone()).await {
            Ok(Outcome::Observed { revision, .. }) => break revision,
            _ => madsim::time::sleep(Duration::from_millis(100)).await,
        }
    };
    record_watch_start(p, "callback", from);
    seen.lock().unwrap().insert((p.id, "callback"), from);
    let mut inbox = store.callback_inbox_after(&url, from);
    while let Some(e) = futures::StreamExt::next(&mut inbox).await {
        record_watched(p, "callback", &e);
        seen.lock().unwrap().insert((p.id, "callback"), e.revision);
    }
}
