//! Which service a task belongs to. A service's spans, log lines and metrics go through its own
//! pipeline (its tracing dispatch and its metrics registry), which is in force while one of its
//! tasks is polled: [`InPipeline`] sets it around every poll of the future it wraps. So several
//! services can share one runtime's threads (the one-process launcher) and still trace, log and
//! count under their own names; a service's runtime of its own also sets it on its threads.
//!
//! A task a service spawns keeps its pipeline only if it is spawned through [`spawn`] (or
//! wrapped by [`in_current_pipeline`]): `tokio::spawn` alone would give it none.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;
use tracing::Dispatch;

use crate::Metrics;

/// A service's tracing dispatch and metrics registry.
#[derive(Clone)]
pub struct Pipeline {
    dispatch: Dispatch,
    metrics: Metrics,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

thread_local! {
    /// The pipeline of the task being polled on this thread, or of the thread's own service.
    static CURRENT: RefCell<Option<Pipeline>> = const { RefCell::new(None) };
}

impl Pipeline {
    pub(crate) fn new(dispatch: Dispatch, metrics: Metrics) -> Self {
        Self { dispatch, metrics }
    }

    /// The pipeline in force on this thread, if any.
    pub fn current() -> Option<Self> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Makes this the pipeline of the calling thread for as long as it lives (a runtime that
    /// serves one service only).
    pub(crate) fn set_for_thread(&self) {
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
        std::mem::forget(tracing::dispatcher::set_default(&self.dispatch));
        std::mem::forget(::metrics::set_default_local_recorder(
            self.metrics.recorder(),
        ));
    }

    /// `future`, run in this pipeline whichever thread polls it.
    pub fn wrap<F: Future>(&self, future: F) -> InPipeline<F> {
        InPipeline {
            pipeline: Some(self.clone()),
            inner: Box::pin(future),
        }
    }

    fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let previous = CURRENT.with(|current| current.replace(Some(self.clone())));
        let outcome = tracing::dispatcher::with_default(&self.dispatch, || self.metrics.record(f));
        CURRENT.with(|current| *current.borrow_mut() = previous);
        outcome
    }
}

/// A future that runs in a service's pipeline (or in none, when there was none to take).
pub struct InPipeline<F> {
    pipeline: Option<Pipeline>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for InPipeline<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        match &this.pipeline {
            Some(pipeline) => pipeline.enter(|| this.inner.as_mut().poll(cx)),
            None => this.inner.as_mut().poll(cx),
        }
    }
}

/// `future`, run in the pipeline in force now (none, if none is).
pub fn in_current_pipeline<F: Future>(future: F) -> InPipeline<F> {
    in_pipeline(Pipeline::current(), future)
}

/// `future`, run in `pipeline` (taken earlier with [`Pipeline::current`]), if any.
pub fn in_pipeline<F: Future>(pipeline: Option<Pipeline>, future: F) -> InPipeline<F> {
    InPipeline {
        pipeline,
        inner: Box::pin(future),
    }
}

/// Spawns `future` on the current runtime, in the pipeline in force now: the way every task
/// of a service is started.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(in_current_pipeline(future))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Telemetry, TelemetryConfig};

    fn counted(metrics: &Metrics) -> bool {
        metrics.render().contains("pipeline_test_total")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spawned_task_counts_into_the_pipeline_of_the_task_that_spawned_it() {
        let config = TelemetryConfig::silent();
        let (one, other) = (
            Telemetry::init("one", "test", &config).unwrap(),
            Telemetry::init("other", "test", &config).unwrap(),
        );
        let pipeline = one.pipeline();
        pipeline
            .wrap(async {
                spawn(async { ::metrics::counter!("pipeline_test_total").increment(1) })
                    .await
                    .unwrap();
            })
            .await;
        assert!(
            counted(one.metrics()),
            "the spawning task's service counted it"
        );
        assert!(!counted(other.metrics()));
        // Spawned without its pipeline, a task counts nowhere.
        pipeline
            .wrap(async {
                tokio::spawn(async {
                    ::metrics::counter!("pipeline_test_other_total").increment(1)
                })
                .await
                .unwrap();
            })
            .await;
        assert!(!one.metrics().render().contains("pipeline_test_other_total"));
    }
}
