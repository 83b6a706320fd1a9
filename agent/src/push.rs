//! Getting the backlog to the primary: register when there is no credential, then push batches
//! oldest first, and decide on every answer.
//!
//! | answer                          | what the sender does                                     |
//! |---------------------------------|----------------------------------------------------------|
//! | push 200 `{"accepted": N}`      | the batch is durable: remove it, reset the backoff       |
//! | push 401                        | forget the credential, register again, resend            |
//! | push 413                        | halve the batch size (for the rest of the run), resend; a single sample too large is dropped as rejected |
//! | push 422                        | log the primary's message, drop the batch (rejected)     |
//! | register 200                    | store the credential (0600), go on pushing               |
//! | register 401                    | log that the enroll token is refused, back off, retry    |
//! | register 409                    | the name is taken by another node: log the primary's message, back off, retry (an admin deletes the old node) |
//! | register 422                    | fatal: [`AgentError::Refused`] with the primary's message |
//! | 429 / 503 (`Retry-After` s)     | keep the samples, wait at least `Retry-After`            |
//! | other status, no answer         | keep the samples, back off ([`Backoff::AGENT_PUSH`])     |
//!
//! A batch is removed only after its answer, so a cancelled or failed push loses nothing (and,
//! the backlog being on disk, neither does a restart or a crash); a push whose answer was lost,
//! or whose removal a crash undid, is sent again, which the primary's storage absorbs (a point
//! with the same series and timestamp overwrites itself in InfluxDB).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pivitals_common::limits::AGENT_BATCH;
use pivitals_common::{Backoff, Goodbye, NodeInfo, RegisterRequest, Retries, Secret, VitalsPush};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::backlog::Backlog;
use crate::client::{CallError, PrimaryClient};
use crate::credential::{self, Credential};
use crate::error::AgentError;

/// While the primary stays unreachable, how often the agent says so at `warn`.
const REPEAT_WARNING: Duration = Duration::from_secs(60);

/// What the caller should do after one [`Sender::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Something was done; step again at once.
    Continue,
    /// Nothing to send: wait for a new sample.
    Idle,
    /// The primary cannot take anything now: try again after this long.
    Wait(Duration),
}

/// Counts for the log and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub sent: u64,
    pub rejected: u64,
}

pub(crate) struct Sender {
    client: PrimaryClient,
    state_dir: PathBuf,
    request: RegisterRequest,
    enroll_token: Option<Secret>,
    credential: Option<Credential>,
    /// The node token of `credential`, for the action loop ([`Sender::node_token`]).
    token: watch::Sender<Option<Secret>>,
    /// No push has succeeded since the last registration; a 401 now means the primary keeps
    /// refusing fresh tokens, so re-registering must back off too.
    just_registered: bool,
    backoff: Retries,
    batch_limit: usize,
    outage: Option<Outage>,
    /// The node's facts as last read ([`crate::run`] refreshes them), and as the primary
    /// last acknowledged them: a push carries them when the two differ.
    info: Arc<Mutex<NodeInfo>>,
    known_info: Option<NodeInfo>,
    pub stats: Stats,
}

/// A run of failures, for logging it without flooding.
struct Outage {
    since: Instant,
    last_warning: Instant,
}

pub(crate) fn lock(backlog: &Mutex<Backlog>) -> MutexGuard<'_, Backlog> {
    backlog.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared node facts; a poisoned lock still holds plain data.
pub(crate) fn lock_info(info: &Mutex<NodeInfo>) -> MutexGuard<'_, NodeInfo> {
    info.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sender {
    pub(crate) fn new(
        client: PrimaryClient,
        state_dir: PathBuf,
        request: RegisterRequest,
        enroll_token: Option<Secret>,
        credential: Option<Credential>,
        info: Arc<Mutex<NodeInfo>>,
    ) -> Self {
        let token = watch::Sender::new(credential.as_ref().map(|c| c.node_token.clone()));
        Self {
            client,
            state_dir,
            request,
            enroll_token,
            credential,
            token,
            just_registered: false,
            backoff: Retries::new(Backoff::AGENT_PUSH),
            batch_limit: AGENT_BATCH,
            outage: None,
            info,
            // With a stored credential the primary knows the facts of an earlier start:
            // the first push brings them up to date.
            known_info: None,
            stats: Stats::default(),
        }
    }

    /// The current node token, None while the node is not registered; it changes when the
    /// sender registers again. Only the sender registers: others wait for a change.
    pub(crate) fn node_token(&self) -> watch::Receiver<Option<Secret>> {
        self.token.subscribe()
    }

    /// Registers if needed, else pushes one batch.
    pub(crate) async fn step(&mut self, backlog: &Mutex<Backlog>) -> Result<Step, AgentError> {
        let Some(credential) = &self.credential else {
            return self.register().await;
        };
        let token = credential.node_token.clone();
        let mut batch = lock(backlog).peek_batch(self.batch_limit);
        if batch.is_empty() {
            return Ok(Step::Idle);
        }
        let count = batch.len();
        // Compared under the lock and cloned only when changed: most pushes carry no facts.
        let info = {
            let current = lock_info(&self.info);
            (self.known_info.as_ref() != Some(&*current)).then(|| current.clone())
        };
        let push = VitalsPush {
            samples: std::mem::take(&mut batch.samples),
            info,
        };
        match self.client.push(&token, &push).await {
            Ok(accepted) => {
                lock(backlog).remove_batch(&batch);
                if let Some(info) = push.info {
                    self.known_info = Some(info);
                }
                if accepted != count as u64 {
                    warn!(
                        count,
                        accepted, "the primary accepted {accepted} of {count} samples"
                    );
                }
                debug!(count, "pushed {count} samples");
                self.stats.sent += count as u64;
                self.just_registered = false;
                self.backoff.reset();
                if let Some(outage) = self.outage.take() {
                    let waited = humantime::format_duration(round_ms(outage.since.elapsed()));
                    info!("the primary takes samples again after {waited}");
                }
                Ok(Step::Continue)
            }
            Err(CallError::Unauthorized { message }) => {
                warn!("the primary refused the node token ({message}); registering again");
                self.forget_credential();
                if self.just_registered {
                    Ok(Step::Wait(self.backoff.next_delay(None)))
                } else {
                    Ok(Step::Continue)
                }
            }
            Err(CallError::TooLarge) if count > 1 => {
                self.batch_limit = (count / 2).max(1);
                warn!(
                    "the primary found {count} samples too large (413); sending at most {} at a time",
                    self.batch_limit
                );
                Ok(Step::Continue)
            }
            Err(CallError::TooLarge) => {
                lock(backlog).remove_batch(&batch);
                self.stats.rejected += 1;
                warn!("the primary found a single sample too large (413); dropping it");
                Ok(Step::Continue)
            }
            // The node's facts are over a cap of this primary (more interfaces than it
            // allows): the samples are fine, so they go again without the facts, which are
            // not sent again until they change.
            Err(CallError::Rejected { message })
                if push.info.is_some() && message.starts_with("info.") =>
            {
                warn!(
                    "the primary refused the node's facts ({message}); sending the samples without them"
                );
                self.known_info = push.info;
                Ok(Step::Continue)
            }
            Err(CallError::Rejected { message }) => {
                lock(backlog).remove_batch(&batch);
                self.stats.rejected += count as u64;
                warn!("the primary refused {count} samples ({message}); dropping them");
                Ok(Step::Continue)
            }
            Err(error) => {
                let waiting = lock(backlog).len();
                Ok(Step::Wait(self.failed("push to", &error, waiting)))
            }
        }
    }

    /// Steps until nothing is left or the primary cannot take more now; for the last push
    /// before the agent stops (the caller bounds it in time).
    pub(crate) async fn flush(&mut self, backlog: &Mutex<Backlog>) -> Result<(), AgentError> {
        loop {
            match self.step(backlog).await? {
                Step::Continue => {}
                Step::Idle | Step::Wait(_) => return Ok(()),
            }
        }
    }

    /// Tells the primary the node stops, if it is registered; returns whether it was told.
    pub(crate) async fn goodbye(&self, reason: &str) -> Result<bool, CallError> {
        let Some(credential) = &self.credential else {
            return Ok(false);
        };
        let goodbye = Goodbye {
            reason: Some(reason.to_owned()),
        };
        self.client
            .goodbye(&credential.node_token, &goodbye)
            .await?;
        Ok(true)
    }

    async fn register(&mut self) -> Result<Step, AgentError> {
        let Some(enroll_token) = &self.enroll_token else {
            return Err(AgentError::NoEnrollToken(self.state_dir.clone()));
        };
        self.request.info = lock_info(&self.info).clone();
        let node = &self.request.node_name;
        match self.client.register(enroll_token, &self.request).await {
            Ok(reply) if reply.node_token.is_empty() => {
                let error = CallError::BadReply("an empty node token".into());
                Ok(Step::Wait(self.failed("register with", &error, 0)))
            }
            Ok(reply) => {
                if reply.node_name != *node {
                    warn!(
                        "registered as {:?} although {node:?} was asked for",
                        reply.node_name
                    );
                }
                let credential = Credential {
                    node_name: reply.node_name,
                    node_token: Secret::new(reply.node_token),
                };
                if let Err(e) = credential::store(&self.state_dir, &credential) {
                    error!(
                        "cannot store the node credential in {}: {e}; the node will register again after a restart",
                        credential::path(&self.state_dir).display()
                    );
                }
                info!(node = %credential.node_name, "registered with the primary");
                self.token.send_replace(Some(credential.node_token.clone()));
                self.credential = Some(credential);
                self.known_info = Some(self.request.info.clone());
                self.just_registered = true;
                Ok(Step::Continue)
            }
            Err(CallError::Rejected { message }) => Err(AgentError::Refused {
                node: node.clone(),
                message,
            }),
            Err(CallError::Unauthorized { message }) => {
                let delay = self.backoff.next_delay(None);
                if self.should_warn() {
                    error!(
                        "the primary refused the enroll token (PIVITALS_ENROLL_TOKEN): {message}; retrying in {}",
                        humantime::format_duration(delay)
                    );
                }
                Ok(Step::Wait(delay))
            }
            Err(error) => Ok(Step::Wait(self.failed("register with", &error, 0))),
        }
    }

    fn forget_credential(&mut self) {
        self.credential = None;
        self.token.send_replace(None);
        if let Err(e) = credential::remove(&self.state_dir) {
            warn!("cannot remove the refused credential: {e}");
        }
    }

    /// Notes a failure worth retrying; returns how long to wait.
    fn failed(&mut self, what: &str, error: &CallError, waiting: usize) -> Duration {
        let delay = self.backoff.next_delay(error.retry_after());
        let retry = humantime::format_duration(delay);
        if self.should_warn() {
            warn!(
                "cannot {what} the primary: {error}; {waiting} samples waiting, retrying in {retry}"
            );
        } else {
            debug!(
                "cannot {what} the primary: {error}; {waiting} samples waiting, retrying in {retry}"
            );
        }
        delay
    }

    /// True for the first failure of a run, then at most once every [`REPEAT_WARNING`].
    fn should_warn(&mut self) -> bool {
        let now = Instant::now();
        match &mut self.outage {
            None => {
                self.outage = Some(Outage {
                    since: now,
                    last_warning: now,
                });
                true
            }
            Some(outage) if now.duration_since(outage.last_warning) >= REPEAT_WARNING => {
                outage.last_warning = now;
                true
            }
            Some(_) => false,
        }
    }
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}
