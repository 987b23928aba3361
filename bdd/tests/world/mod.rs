//! The world each scenario lives in: the stack under test, the caller's token, the email address
//! the scenario is about, and what the gateway last answered.

pub mod stack;
pub mod traces;

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use cucumber::World;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode, Url};
use serde_json::{Value, json};

use traces::Traces;

/// How long something the stack does in the background (an announcement, a queued creation, the
/// export of spans) may take before a scenario gives up on it.
pub const PATIENCE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The stack every scenario talks to, set once by the runner before the first scenario.
static TARGET: OnceLock<Target> = OnceLock::new();

/// Where the scenarios find the stack, and how they act as a signed-in caller.
#[derive(Debug)]
pub struct Target {
    pub gateway: Url,
    /// Signs the tokens of signed-in callers; the gateway checks them with it.
    pub jwt_secret: String,
    pub traces: Traces,
}

impl Target {
    /// Points every scenario of this run at `self`.
    pub fn aim_scenarios_here(self) {
        assert!(
            TARGET.set(self).is_ok(),
            "the scenarios are aimed once per run"
        );
    }
}

/// What the gateway answered to a request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    async fn read(request: RequestBuilder) -> Self {
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("the gateway did not answer: {error}"));
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// The body as JSON; a panic showing the answer when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("the answer is not JSON ({error}):\n{self}"))
    }

    /// A header's value; a panic showing the answer when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("the answer has no {name} header:\n{self}"))
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{}", self.status)?;
        for (name, value) in &self.headers {
            writeln!(
                formatter,
                "{name}: {}",
                value.to_str().unwrap_or("<not text>")
            )?;
        }
        write!(formatter, "\n{}", self.body)
    }
}

#[derive(Debug, World)]
#[world(init = Self::new)]
pub struct StackWorld {
    target: &'static Target,
    client: reqwest::Client,
    /// The bearer token the caller sends; none when the caller is not signed in.
    token: Option<String>,
    /// The email address of the user the scenario is about.
    email: Option<String>,
    answer: Option<Answer>,
    /// The trace the scenario follows, from an answer's `x-trace-id` header.
    trace_id: Option<String>,
}

impl StackWorld {
    fn new() -> Self {
        Self {
            target: TARGET
                .get()
                .expect("the runner aims the scenarios at a stack before they run"),
            client: reqwest::Client::new(),
            token: None,
            email: None,
            answer: None,
            trace_id: None,
        }
    }

    /// `path_and_query` on the gateway.
    pub fn url(&self, path_and_query: &str) -> Url {
        self.target
            .gateway
            .join(path_and_query)
            .unwrap_or_else(|error| panic!("{path_and_query} is not a gateway path: {error}"))
    }

    /// Signs in as `subject` with a token signed by `secret`.
    pub fn sign_in_with(&mut self, secret: &str, subject: &str) {
        self.token = Some(contract::tokens::mint(
            secret,
            subject,
            contract::tokens::DEFAULT_AUDIENCE,
            Duration::from_secs(300),
        ));
    }

    pub fn sign_in(&mut self, subject: &str) {
        let target = self.target;
        self.sign_in_with(&target.jwt_secret, subject);
    }

    pub fn sign_out(&mut self) {
        self.token = None;
    }

    /// A fresh email address, no other scenario's or run's, which the scenario is then about.
    pub fn new_email(&mut self) -> String {
        let email = format!("bdd-{}@example.com", uuid::Uuid::new_v4().simple());
        self.email = Some(email.clone());
        email
    }

    pub fn email(&self) -> &str {
        self.email
            .as_deref()
            .expect("an earlier step of the scenario picks an email address")
    }

    pub fn answer(&self) -> &Answer {
        self.answer
            .as_ref()
            .expect("an earlier step of the scenario asks the gateway something")
    }

    pub fn follow_trace(&mut self, trace_id: &str) {
        self.trace_id = Some(trace_id.to_owned());
    }

    pub fn trace_id(&self) -> &str {
        self.trace_id
            .as_deref()
            .expect("an earlier step of the scenario picks the trace to follow")
    }

    /// The spans of the followed trace that have arrived so far.
    pub async fn trace_spans(&self) -> Result<Vec<Value>, String> {
        self.target
            .traces
            .spans(&self.client, self.trace_id())
            .await
    }

    /// `GET url` as the scenario's observer (who is signed in, whoever the caller is), to see
    /// what the caller's requests did; the answer is not kept.
    pub async fn fetch(&self, url: Url) -> Answer {
        let observer = contract::tokens::mint(
            &self.target.jwt_secret,
            "bdd-observer",
            contract::tokens::DEFAULT_AUDIENCE,
            Duration::from_secs(300),
        );
        Answer::read(self.client.get(url).bearer_auth(observer)).await
    }

    /// `GET path_and_query` on the gateway as the caller (with their token, if any); the
    /// answer is kept for the steps that follow.
    pub async fn get(&mut self, path_and_query: &str) {
        let mut request = self.client.get(self.url(path_and_query));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.answer = Some(Answer::read(request).await);
    }

    /// `POST /user` with the caller's token, if any, asking for the creation to happen in the
    /// background when `in_background`; the answer is kept for the steps that follow.
    pub async fn create_user(&mut self, name: &str, email: &str, in_background: bool) {
        let mut request = self
            .client
            .post(self.url("/user"))
            .json(&json!({"name": name, "email": email}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if in_background {
            request = request.header("prefer", "respond-async");
        }
        self.answer = Some(Answer::read(request).await);
    }
}

/// Retries `check` until it succeeds, giving up with a panic that names `what` and the last
/// reason after [`PATIENCE`].
pub async fn soon<T, Check>(what: &str, mut check: impl FnMut() -> Check) -> T
where
    Check: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) if tokio::time::Instant::now() >= deadline => {
                panic!("{what} did not happen within {PATIENCE:?}: {reason}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}
