//! One export thread per process. Each service's tracer provider hands its finished spans to a
//! [`ProcessBatch`], which queues them for the process's one export thread; that thread sends
//! each service's spans through the service's own exporter (so each keeps its `service.name`),
//! when a batch is full or the schedule delay is up, on a small runtime of its own (the HTTP
//! exporters are asynchronous). Five services in one process thus cost one exporting thread,
//! not five (and five more inside blocking HTTP clients).
//!
//! The queue is bounded per service: spans past it are dropped, counted and reported once, and
//! never block the request that ended them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::BatchSettings;
use crate::export::{ConfiguredExporter, ReportingExporter};

type Exporter = ReportingExporter<ConfiguredExporter>;

/// What the export thread and the services' processors share.
struct Shared {
    state: Mutex<State>,
    /// Rung when a batch is full or a flush is asked.
    wake: Condvar,
    settings: BatchSettings,
}

#[derive(Default)]
struct State {
    spans: Vec<(u64, SpanData)>,
    /// Spans waiting, per service: what the bound counts.
    waiting: BTreeMap<u64, usize>,
    /// Spans dropped since the last export round, per service.
    dropped: BTreeMap<u64, u64>,
    exporters: BTreeMap<u64, Arc<Exporter>>,
    /// Answered once the spans queued before them are exported.
    flushes: Vec<mpsc::SyncSender<()>>,
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the queue leaves it usable: it holds only plain data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The process's export thread, started by the first service.
    fn get(settings: BatchSettings) -> Arc<Self> {
        Arc::clone(SHARED.get_or_init(|| {
            let shared = Arc::new(Shared {
                state: Mutex::default(),
                wake: Condvar::new(),
                settings,
            });
            let exporting = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("span-export".to_owned())
                .spawn(move || exporting.export_forever())
                .expect("a thread for the span exports");
            shared
        }))
    }

    fn export_forever(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the span exports");
        loop {
            let (spans, dropped, exporters, flushes) = self.next_round();
            let mut batches: BTreeMap<u64, Vec<SpanData>> = BTreeMap::new();
            for (id, span) in spans {
                batches.entry(id).or_default().push(span);
            }
            for (id, count) in dropped {
                if let Some(exporter) = exporters.get(&id) {
                    exporter.note_dropped(count);
                }
            }
            for (id, mut batch) in batches {
                // A service that has shut down takes nothing more.
                let Some(exporter) = exporters.get(&id) else {
                    continue;
                };
                while !batch.is_empty() {
                    let rest =
                        batch.split_off(batch.len().min(self.settings.max_export_batch_size));
                    // Failures are the exporter's to report; the spans are dropped.
                    let _ = runtime.block_on(exporter.export(batch));
                    batch = rest;
                }
            }
            for flush in flushes {
                let _ = flush.try_send(());
            }
        }
    }

    /// Waits until a batch is full, a flush is asked or the schedule delay is up; takes what
    /// is queued.
    #[allow(clippy::type_complexity)]
    fn next_round(
        &self,
    ) -> (
        Vec<(u64, SpanData)>,
        BTreeMap<u64, u64>,
        BTreeMap<u64, Arc<Exporter>>,
        Vec<mpsc::SyncSender<()>>,
    ) {
        let deadline = Instant::now() + self.settings.schedule_delay;
        let mut state = self.lock();
        while state.flushes.is_empty() && state.spans.len() < self.settings.max_export_batch_size {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        state.waiting.clear();
        (
            std::mem::take(&mut state.spans),
            std::mem::take(&mut state.dropped),
            state.exporters.clone(),
            std::mem::take(&mut state.flushes),
        )
    }

    /// Exports everything queued now, waiting at most `timeout`.
    fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let (done, exported) = mpsc::sync_channel(1);
        self.lock().flushes.push(done);
        self.wake.notify_one();
        exported
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

/// A service's span processor: queues its finished spans for the process's export thread.
pub(crate) struct ProcessBatch {
    id: u64,
    shared: Arc<Shared>,
    /// Kept until the provider gives the resource, then handed to the export thread.
    exporter: Mutex<Option<Exporter>>,
}

impl std::fmt::Debug for ProcessBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ProcessBatch {
    pub(crate) fn new(exporter: Exporter, settings: BatchSettings) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared: Shared::get(settings),
            exporter: Mutex::new(Some(exporter)),
        }
    }
}

impl SpanProcessor for ProcessBatch {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let mut state = self.shared.lock();
        let waiting = state.waiting.entry(self.id).or_default();
        if *waiting >= self.shared.settings.max_queue_size {
            *state.dropped.entry(self.id).or_default() += 1;
            return;
        }
        *waiting += 1;
        state.spans.push((self.id, span));
        let full = state.spans.len() >= self.shared.settings.max_export_batch_size;
        drop(state);
        if full {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.shared.flush(Duration::from_secs(5))
    }

    /// Exports this service's last spans, then forgets its exporter.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.shared.flush(timeout);
        let exporter = self.shared.lock().exporters.remove(&self.id);
        if let Some(exporter) = exporter {
            exporter.shutdown_with_timeout(timeout)?;
        }
        flushed
    }

    fn set_resource(&mut self, resource: &Resource) {
        let exporter = self
            .exporter
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut exporter) = exporter {
            exporter.set_resource(resource);
            self.shared
                .lock()
                .exporters
                .insert(self.id, Arc::new(exporter));
        }
    }
}
