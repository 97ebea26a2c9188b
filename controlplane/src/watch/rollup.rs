//! Rolls each closed minute up into performance records (`trace::rollup`), a little after it
//! closed so the last traces and their mirror rows are committed. On start it continues
//! after the newest minute already rolled up, at most an hour back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::storage::{Db, unix_micros};
use crate::trace::rollup::{self, MINUTE_MICROS};

/// How long after a minute closes it is rolled up.
const SETTLE_MICROS: i64 = 10_000_000;

fn minute_of(micros: i64) -> i64 {
    micros - micros.rem_euclid(MINUTE_MICROS)
}

pub async fn run(db: Db, interval: Duration, stop: CancellationToken) {
    let current = minute_of(unix_micros());
    let mut next = match rollup::last_rolled_minute(&db).await {
        Ok(Some(last)) => last + MINUTE_MICROS,
        Ok(None) => current - MINUTE_MICROS,
        Err(error) => {
            tracing::error!(%error, "reading the last rolled-up minute failed");
            current - MINUTE_MICROS
        }
    }
    .max(current - 60 * MINUTE_MICROS);
    loop {
        while next + MINUTE_MICROS + SETTLE_MICROS <= unix_micros() {
            let rolled = match rollup::minute(&db, next).await {
                Ok(metrics) => rollup::store(&db, &metrics).await,
                Err(error) => Err(error),
            };
            if let Err(error) = rolled {
                // Tried again on the next tick.
                tracing::error!(%error, minute = next, "rolling up performance records failed");
                break;
            }
            next += MINUTE_MICROS;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
