//! `load --rate N`: a steady load for people to look at, not a measurement. N requests a second,
//! sent on time whether or not the earlier ones were answered (an open loop), as a mix of what
//! the stack's users do: creations, reads, availability calls over RPC, an invalid request and
//! queued creations. It runs until its time is up or it is stopped (Ctrl-C, SIGTERM), then
//! prints what each kind of request was answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::report::Tally;

/// One request of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Create,
    CreateQueued,
    Read,
    List,
    Availability,
    Invalid,
}

impl Kind {
    /// Ten requests in the proportions of the mix: creations and reads most.
    pub const MIX: [Kind; 10] = [
        Kind::Create,
        Kind::Read,
        Kind::Availability,
        Kind::Create,
        Kind::Read,
        Kind::List,
        Kind::Invalid,
        Kind::CreateQueued,
        Kind::Read,
        Kind::Availability,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Create => "POST /user",
            Kind::CreateQueued => "POST /user (async)",
            Kind::Read => "GET /user/{id}",
            Kind::List => "GET /users",
            Kind::Availability => "GET /users/availability",
            Kind::Invalid => "POST /user (invalid)",
        }
    }

    /// The status a healthy stack answers.
    pub fn expected(self) -> u16 {
        match self {
            Kind::Create => 201,
            Kind::CreateQueued => 202,
            Kind::Invalid => 400,
            _ => 200,
        }
    }
}

/// How many requests may wait for their answers at once; past it a tick is skipped (and
/// counted): the stack is not keeping up.
const IN_FLIGHT: usize = 512;

pub struct Steady {
    pub url: String,
    pub token: String,
    pub rate: u64,
    /// `None`: until stopped.
    pub seconds: Option<u64>,
}

struct Shared {
    client: reqwest::Client,
    url: String,
    token: String,
    run: u128,
    /// Ids of users created, for the reads.
    created: Mutex<Vec<i64>>,
    tallies: Mutex<BTreeMap<Kind, Tally>>,
}

impl Steady {
    /// Runs the mix; false when a request got another answer than a healthy stack gives.
    pub async fn run(self, client: reqwest::Client) -> bool {
        let shared = Arc::new(Shared {
            client,
            url: self.url.clone(),
            token: self.token.clone(),
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
                .unwrap_or_default(),
            created: Mutex::new(Vec::new()),
            tallies: Mutex::new(BTreeMap::new()),
        });
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate as f64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let started = Instant::now();
        let until = self
            .seconds
            .map(|seconds| started + Duration::from_secs(seconds));
        let stop = stopped();
        tokio::pin!(stop);
        let mut skipped = 0u64;
        println!(
            "load: {} requests a second on {} ({}); Ctrl-C stops",
            self.rate,
            self.url,
            match self.seconds {
                Some(seconds) => format!("for {seconds} s"),
                None => "until stopped".to_owned(),
            }
        );
        for n in 0usize.. {
            tokio::select! {
                _ = ticks.tick() => {}
                () = &mut stop => break,
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                break;
            }
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let (shared, kind) = (Arc::clone(&shared), Kind::MIX[n % Kind::MIX.len()]);
            tokio::spawn(async move {
                shared.send(kind, n).await;
                drop(permit);
            });
        }
        // The requests in flight get their answers.
        let _ = permits.acquire_many(IN_FLIGHT as u32).await;
        let elapsed = started.elapsed();
        let tallies = shared.tallies.lock().unwrap();
        let mut healthy = skipped == 0;
        println!(
            "load: {:.0} s, {skipped} ticks skipped",
            elapsed.as_secs_f64()
        );
        for (kind, tally) in tallies.iter() {
            let summary = tally.summary(elapsed);
            healthy &= summary
                .statuses
                .keys()
                .all(|status| *status == kind.expected().to_string());
            println!("{}", kind.name());
            print!("{summary}");
        }
        healthy
    }
}

impl Shared {
    async fn send(&self, kind: Kind, n: usize) {
        let email = format!("steady-{}-{n}@example.com", self.run);
        let url = &self.url;
        let request = match kind {
            Kind::Create | Kind::CreateQueued => {
                let request = self
                    .client
                    .post(format!("{url}/user"))
                    .bearer_auth(&self.token)
                    .json(&json!({"name": "Steady Load", "email": email}));
                match kind {
                    Kind::CreateQueued => request.header("prefer", "respond-async"),
                    _ => request,
                }
            }
            Kind::Invalid => self
                .client
                .post(format!("{url}/user"))
                .bearer_auth(&self.token)
                .json(&json!({"name": "", "email": "not an email"})),
            Kind::Read => {
                let id = {
                    let created = self.created.lock().unwrap();
                    created.get(n % created.len().max(1)).copied().unwrap_or(1)
                };
                self.client
                    .get(format!("{url}/user/{id}"))
                    .bearer_auth(&self.token)
            }
            Kind::List => self
                .client
                .get(format!("{url}/users?limit=20"))
                .bearer_auth(&self.token),
            // The emails here need no escaping.
            Kind::Availability => self
                .client
                .get(format!("{url}/users/availability?email={email}"))
                .bearer_auth(&self.token),
        };
        let started = Instant::now();
        let answer = request.send().await;
        let elapsed = started.elapsed();
        let status = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                if kind == Kind::Create
                    && status == 201
                    && let Ok(user) = response.json::<serde_json::Value>().await
                    && let Some(id) = user["id"].as_i64()
                {
                    let mut created = self.created.lock().unwrap();
                    if created.len() < 10_000 {
                        created.push(id);
                    }
                }
                status
            }
            Err(_) => 0,
        };
        self.tallies
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .record(status, elapsed);
    }
}

/// Completes on Ctrl-C or SIGTERM (`docker compose stop`).
async fn stopped() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind_and_mostly_creations_and_reads() {
        let count = |kind| Kind::MIX.iter().filter(|k| **k == kind).count();
        for kind in [
            Kind::Create,
            Kind::CreateQueued,
            Kind::Read,
            Kind::List,
            Kind::Availability,
            Kind::Invalid,
        ] {
            assert!(count(kind) >= 1, "{kind:?} is never sent");
        }
        assert_eq!(count(Kind::Create) + count(Kind::Read), 5);
        assert_eq!(Kind::Invalid.expected(), 400);
    }
}
