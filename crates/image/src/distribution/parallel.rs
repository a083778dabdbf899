//! Running blob transfers on a few threads at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::error::DistributionError;

/// Runs `work` on every item with up to `concurrency` threads and returns the results in item
/// order. `work` gets a cancel flag to watch and returns `Ok(None)` when it stopped because of
/// it. The first error raises the flag, so the other threads stop taking items and abandon
/// their transfers, and is returned.
pub(crate) fn run_concurrently<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    work: impl Fn(&T, &AtomicBool) -> Result<Option<R>, DistributionError> + Sync,
) -> Result<Vec<R>, DistributionError> {
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    type Slot<R> = Option<Result<Option<R>, DistributionError>>;
    let results: Mutex<Vec<Slot<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let workers = concurrency.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                let result = work(item, &cancel);
                if result.is_err() {
                    cancel.store(true, Ordering::Relaxed);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut outcomes = Vec::with_capacity(results.len());
    let mut cancelled = false;
    for result in results {
        match result {
            Some(Ok(Some(outcome))) => outcomes.push(outcome),
            Some(Err(error)) => return Err(error),
            Some(Ok(None)) | None => cancelled = true,
        }
    }
    if cancelled {
        // Only reachable if `work` returned `Ok(None)` without any error being raised.
        return Err(DistributionError::Transfer {
            host: String::new(),
            operation: "blob transfers".to_owned(),
            reason: "a transfer stopped without an error".to_owned(),
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_stops_at_the_first_error() {
        let items: Vec<u32> = (0..20).collect();
        let doubled = run_concurrently(&items, 3, |n, _| Ok(Some(n * 2))).unwrap();
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        let failed = run_concurrently(&items, 3, |n, cancel| {
            if *n == 5 {
                return Err(DistributionError::NoConfigDir);
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            Ok(Some(*n))
        });
        assert!(matches!(failed, Err(DistributionError::NoConfigDir)));
        assert!(run_concurrently(&[] as &[u32], 3, |n, _| Ok(Some(*n)))
            .unwrap()
            .is_empty());
    }
}
