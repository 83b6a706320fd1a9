//! Warning once per metric family, so a host that lacks a sensor does not log on every sample.

use std::fmt;

/// Remembers whether a family has already warned.
#[derive(Debug, Default)]
pub(crate) struct WarnOnce {
    warned: bool,
}

impl WarnOnce {
    /// Logs `reason` as a warning for `family` the first time only; returns whether it logged.
    pub(crate) fn warn(&mut self, family: &'static str, reason: &dyn fmt::Display) -> bool {
        if self.warned {
            return false;
        }
        self.warned = true;
        tracing::warn!(family, "{family} not collected: {reason}");
        true
    }

    /// The value of `result`, or None after warning (once) about its error.
    pub(crate) fn ok<T, E: fmt::Display>(
        &mut self,
        family: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.warn(family, &error);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_the_first_time_only() {
        let mut once = WarnOnce::default();
        assert!(once.warn("cpu", &"no CPUs"));
        assert!(!once.warn("cpu", &"no CPUs"));
        assert!(!once.warn("cpu", &"something else"));
    }

    #[test]
    fn ok_passes_values_through_and_turns_errors_into_none() {
        let mut once = WarnOnce::default();
        assert_eq!(once.ok("load", Ok::<_, String>(3)), Some(3));
        assert_eq!(once.ok("load", Err::<u8, _>("unreadable")), None);
        assert!(
            !once.warn("load", &"again"),
            "the error above already warned"
        );
    }
}
