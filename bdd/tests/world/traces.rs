//! Where the scenarios read the stack's traces: the in-test Zipkin receiver of a stack the suite
//! started, or the query API of the Zipkin a running stack reports to (`BDD_ZIPKIN_URL`).

use std::fmt;

use serde_json::Value;
use test_support::ZipkinReceiver;

pub enum Traces {
    /// The receiver the self-started stack exports its spans to.
    Received(ZipkinReceiver),
    /// The base URL of a Zipkin server, e.g. `http://127.0.0.1:9411`.
    Zipkin(String),
    /// A running stack was given without its Zipkin: its traces cannot be read.
    NotGiven,
}

impl fmt::Debug for Traces {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Traces::Received(receiver) => write!(formatter, "Received({})", receiver.endpoint()),
            Traces::Zipkin(url) => write!(formatter, "Zipkin({url})"),
            Traces::NotGiven => formatter.write_str("NotGiven"),
        }
    }
}

impl Traces {
    /// The spans of trace `trace_id` that have arrived so far; an error when Zipkin cannot be
    /// asked, a panic saying how to give it when it was not.
    pub async fn spans(
        &self,
        client: &reqwest::Client,
        trace_id: &str,
    ) -> Result<Vec<Value>, String> {
        match self {
            Traces::Received(receiver) => Ok(receiver.trace(trace_id)),
            Traces::Zipkin(base) => {
                let url = format!("{}/api/v2/trace/{trace_id}", base.trim_end_matches('/'));
                let response = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|error| format!("Zipkin at {url} did not answer: {error}"))?;
                match response.status().as_u16() {
                    200 => response
                        .json()
                        .await
                        .map_err(|error| format!("Zipkin at {url} answered no spans: {error}")),
                    404 => Ok(Vec::new()),
                    status => Err(format!("Zipkin at {url} answered {status}")),
                }
            }
            Traces::NotGiven => panic!(
                "this scenario reads traces from the Zipkin the stack at BDD_GATEWAY_URL reports \
                 to: give its address with BDD_ZIPKIN_URL (e.g. BDD_ZIPKIN_URL=http://127.0.0.1:9411)"
            ),
        }
    }
}
