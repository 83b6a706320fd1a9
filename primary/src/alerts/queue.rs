//! The delivery loop both alert senders share (the status webhook and each notification
//! channel): one task takes its bounded queue's messages in order and delivers each, retries
//! included, until shutdown; what was not delivered then is counted, never waited for.

use tokio::sync::mpsc;

use crate::shutdown::{Shutdown, stopped};

/// Delivers `queue`'s messages one at a time with `deliver` until the queue closes or shutdown
/// begins; returns how many were not delivered (the one interrupted by shutdown and those
/// still queued).
pub(crate) async fn deliver_in_order<T, F, Fut>(
    mut queue: mpsc::Receiver<T>,
    mut shutdown: Shutdown,
    mut deliver: F,
) -> usize
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut undelivered = 0;
    loop {
        let message = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return 0,
            },
            () = stopped(&mut shutdown) => break,
        };
        tokio::select! {
            () = deliver(message) => {}
            () = stopped(&mut shutdown) => {
                undelivered += 1;
                break;
            }
        }
    }
    queue.close();
    while queue.try_recv().is_ok() {
        undelivered += 1;
    }
    undelivered
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_counts_what_shutdown_left() {
        let (tx, rx) = mpsc::channel(8);
        let (stop, shutdown) = watch::channel(false);
        for n in 0..5 {
            tx.send(n).await.unwrap();
        }
        let delivered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&delivered);
        let task = tokio::spawn(deliver_in_order(rx, shutdown, move |n: i32| {
            seen.lock().unwrap().push(n);
            async move {
                if n == 2 {
                    // Slow enough for shutdown to come first.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }));
        // Real time: long enough for 0 and 1 to be delivered and 2 to be under way.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        assert_eq!(
            task.await.unwrap(),
            3,
            "2 interrupted, 3 and 4 still queued"
        );
        assert_eq!(*delivered.lock().unwrap(), [0, 1, 2]);
    }
}
