//! Per-second rates from kernel counters: the previous sample of each source (an interface, a
//! block device) is kept with the monotonic instant it was read at, and the next sample's
//! counters are divided by the time between the two.
//!
//! # Rules
//!
//! - **First sample** of a source: no rates (nothing to compare with); its counters become the
//!   baseline.
//! - **A counter lower than before**: no rates for this sample, and the new counters become the
//!   baseline. A decrease means the counters restarted: the interface was re-created, the
//!   driver reloaded, the host rebooted, or a counter the kernel keeps in 32 bits wrapped
//!   (`/proc/net/dev` of a driver without 64-bit stats on a 32-bit kernel; `io_ticks` of
//!   `/proc/diskstats`, printed as 32-bit milliseconds, every 49.7 days). A wrap cannot be told
//!   from a restart, and guessing "wrap" after a restart would report a spike of up to 2³²
//!   bytes; losing one interval's rates is the smaller harm, so every decrease is a restart.
//! - **No time elapsed** (two samples at the same instant): no rates; the new counters become
//!   the baseline.
//! - **Sources that disappear** from a sample are forgotten: if they come back, their first
//!   sample has no rates again.
//!
//! A restart that climbs past the old value within one interval cannot be seen and yields a
//! rate that is too low; nothing in the kernel files tells it apart.

use std::collections::HashMap;
use std::time::Instant;

/// The increase of `N` counters over an interval of known length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Delta<const N: usize> {
    /// How much each counter grew.
    pub(crate) increase: [u64; N],
    /// The interval in seconds; always above zero.
    pub(crate) seconds: f64,
}

impl<const N: usize> Delta<N> {
    /// Counter `index`'s increase per second.
    pub(crate) fn per_second(&self, index: usize) -> f64 {
        self.increase[index] as f64 / self.seconds
    }

    /// Counter `index`, a count of milliseconds, as a share of the interval in percent, at
    /// most 100 (the kernel's busy time can run slightly ahead of our clock).
    pub(crate) fn percent_of_interval(&self, index: usize) -> f64 {
        (self.increase[index] as f64 / (self.seconds * 1000.0) * 100.0).min(100.0)
    }
}

/// The previous counters and read instant of every source seen in the last sample.
#[derive(Debug)]
pub(crate) struct Baselines<const N: usize> {
    previous: HashMap<String, (Instant, [u64; N])>,
}

impl<const N: usize> Default for Baselines<N> {
    fn default() -> Self {
        Self {
            previous: HashMap::new(),
        }
    }
}

impl<const N: usize> Baselines<N> {
    /// Pairs every item of a sample read at `now` with its counters' [`Delta`] since the
    /// previous sample (under the rules of the module doc), and makes this sample the baseline:
    /// sources not in `items` are forgotten. `counters` gives an item's source name and counters.
    pub(crate) fn advance<T>(
        &mut self,
        now: Instant,
        items: Vec<T>,
        counters: impl Fn(&T) -> (&str, [u64; N]),
    ) -> Vec<(T, Option<Delta<N>>)> {
        let mut next = HashMap::with_capacity(items.len());
        let paired = items
            .into_iter()
            .map(|item| {
                let (name, current) = counters(&item);
                let delta = self
                    .previous
                    .remove(name)
                    .and_then(|(then, before)| delta(then, &before, now, &current));
                next.insert(name.to_owned(), (now, current));
                (item, delta)
            })
            .collect();
        self.previous = next;
        paired
    }
}

/// The increase from `before` (read at `then`) to `current` (read at `now`); None if any
/// counter went down or no time passed.
fn delta<const N: usize>(
    then: Instant,
    before: &[u64; N],
    now: Instant,
    current: &[u64; N],
) -> Option<Delta<N>> {
    let seconds = now.checked_duration_since(then)?.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let mut increase = [0; N];
    for (slot, (new, old)) in increase.iter_mut().zip(current.iter().zip(before)) {
        *slot = new.checked_sub(*old)?;
    }
    Some(Delta { increase, seconds })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn advance(
        baselines: &mut Baselines<2>,
        now: Instant,
        items: &[(&str, [u64; 2])],
    ) -> Vec<Option<Delta<2>>> {
        baselines
            .advance(now, items.to_vec(), |(name, c)| (name, *c))
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn rates_are_the_increase_over_the_elapsed_time() {
        let t0 = Instant::now();
        let mut b = Baselines::default();
        assert_eq!(advance(&mut b, t0, &[("a", [100, 5])]), [None]);
        let d = advance(&mut b, t0 + Duration::from_secs(4), &[("a", [500, 5])])[0]
            .expect("a second sample has rates");
        assert_eq!(d.increase, [400, 0]);
        assert_eq!(d.per_second(0), 100.0);
        assert_eq!(d.per_second(1), 0.0);
    }

    #[test]
    fn a_decrease_is_a_restart_and_becomes_the_baseline() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut b = Baselines::default();
        advance(&mut b, t0, &[("a", [u64::from(u32::MAX) - 10, 7])]);
        assert_eq!(advance(&mut b, t0 + s, &[("a", [20, 9])]), [None]);
        let d = advance(&mut b, t0 + 2 * s, &[("a", [30, 9])])[0].expect("rates again");
        assert_eq!(d.increase, [10, 0]);
    }

    #[test]
    fn no_elapsed_time_gives_no_rates() {
        let t0 = Instant::now();
        let mut b = Baselines::default();
        advance(&mut b, t0, &[("a", [1, 1])]);
        assert_eq!(advance(&mut b, t0, &[("a", [2, 2])]), [None]);
        let d = advance(&mut b, t0 + Duration::from_millis(500), &[("a", [3, 2])])[0]
            .expect("rates against the same-instant sample");
        assert_eq!(d.per_second(0), 2.0);
    }

    #[test]
    fn sources_that_disappear_are_forgotten() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut b = Baselines::default();
        advance(&mut b, t0, &[("a", [1, 1]), ("b", [1, 1])]);
        let gone = advance(&mut b, t0 + s, &[("a", [2, 2])]);
        assert!(gone[0].is_some());
        let back = advance(&mut b, t0 + 2 * s, &[("a", [3, 3]), ("b", [9, 9])]);
        assert!(back[0].is_some());
        assert_eq!(back[1], None, "b came back: a first sample again");
    }

    #[test]
    fn busy_time_is_a_capped_share_of_the_interval() {
        let d = Delta {
            increase: [250, 1200],
            seconds: 1.0,
        };
        assert_eq!(d.percent_of_interval(0), 25.0);
        assert_eq!(d.percent_of_interval(1), 100.0);
    }
}
