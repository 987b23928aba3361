// The page's own spans. Each action a person takes is a root span; each request it makes is a
// CLIENT child whose id goes out in the W3C traceparent, so the gateway's SERVER span continues
// the page's trace; the live feed's frame of that trace is an event on the root, which ends
// then. The spans leave in batches, as OTLP/HTTP JSON, for the gateway to relay.
//
// A span model of the page's own, not the OpenTelemetry JS SDK: docs/observability.md says why.

/** The actions the page traces: `frontend.action` (a bounded set) and each one's span name. */
const ACTIONS = {
  load_lists: 'load lists',
  create_user: 'click Create user',
  check_email: 'check email',
  switch_fault_on: 'switch fault on',
  switch_faults_off: 'switch faults off',
};

const SPAN_KIND = { internal: 1, client: 3 }; // OTLP's SpanKind
const STATUS_ERROR = 2; // OTLP's StatusCode
const FRAME_TIMEOUT_MS = 10_000;
const FLUSH_AFTER_MS = 2_000;
// The relay takes 64 KiB a body, and a page's keepalive requests may carry 64 KiB in all.
const BATCH_BYTES = 32 * 1024;
// Frames kept for an action that learns its trace only after its frame came, and the gateway's
// traces kept to link the page's in their place.
const RECENT_FRAMES = 64;
const ALIASES = 64;
const encoder = new TextEncoder();

/** The browser's clock, in epoch milliseconds with their fraction. */
const now = () => performance.timeOrigin + performance.now();

/** A Performance timestamp (an event's, Resource Timing's) on the same clock. */
export const fromPerformance = (timestamp) => performance.timeOrigin + timestamp;

/** OTLP's nanoseconds, as the decimal string its JSON mapping asks for 64-bit integers. */
const unixNano = (ms) => String(BigInt(Math.round(ms * 1000)) * 1000n);

/** n random bytes as lower hex, never all zeros (an invalid id in W3C trace context). */
function randomHex(n) {
  const bytes = new Uint8Array(n);
  do crypto.getRandomValues(bytes);
  while (bytes.every((b) => b === 0));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The page's attributes are integers (a status, a size) or strings. */
const otlpValue = (value) => (Number.isInteger(value) ? { intValue: String(value) } : { stringValue: String(value) });

const otlpAttributes = (attributes) => Object.entries(attributes).map(([key, value]) => ({ key, value: otlpValue(value) }));

class Span {
  #record; // hands the finished span to the exporter; null when nothing is exported

  constructor(record, { name, kind, traceId = randomHex(16), parentSpanId = null }) {
    this.#record = record;
    this.name = name;
    this.kind = kind;
    this.traceId = traceId;
    this.spanId = randomHex(8);
    this.parentSpanId = parentSpanId;
    this.startTime = now();
    this.endTime = null;
    this.attributes = {};
    this.events = [];
    this.failed = false;
  }

  /**
   * Its W3C trace context, always sampled so that the gateway records the trace the page
   * records; null when the page exports nothing (a parent the trace would never hold).
   */
  get traceparent() {
    return this.#record ? `00-${this.traceId}-${this.spanId}-01` : null;
  }

  set(attributes) {
    Object.assign(this.attributes, attributes);
    return this;
  }

  addEvent(name, time, attributes = {}) {
    this.events.push({ name, time, attributes });
  }

  /** OTLP's error status, with `error.type` saying what went wrong. */
  fail(errorType) {
    this.failed = true;
    this.attributes['error.type'] = errorType;
  }

  finish() {
    if (this.endTime != null) return;
    this.endTime = now();
    this.#record?.(this);
  }

  toOtlp() {
    return {
      traceId: this.traceId,
      spanId: this.spanId,
      ...(this.parentSpanId && { parentSpanId: this.parentSpanId }),
      name: this.name,
      kind: this.kind,
      startTimeUnixNano: unixNano(this.startTime),
      endTimeUnixNano: unixNano(this.endTime),
      attributes: otlpAttributes(this.attributes),
      events: this.events.map((event) => ({
        timeUnixNano: unixNano(event.time),
        name: event.name,
        attributes: otlpAttributes(event.attributes),
      })),
      ...(this.failed && { status: { code: STATUS_ERROR } }),
    };
  }
}

/** One action a person took: its root span, the requests it made, the frame it waits for. */
class Action {
  #tracer;
  #record;
  #waiting = null; // {type, arrived}: the frame that ends the action

  constructor(tracer, record, action) {
    this.#tracer = tracer;
    this.#record = record;
    this.root = new Span(record, { name: ACTIONS[action], kind: SPAN_KIND.internal }).set({ 'frontend.action': action });
    // The page's trace, and the gateway's when it started its own (OTEL_TRUST_INBOUND_CONTEXT=false).
    this.traceIds = new Set([this.root.traceId]);
  }

  get traceId() {
    return this.root.traceId;
  }

  get startedAt() {
    return this.root.startTime;
  }

  get ended() {
    return this.root.endTime != null;
  }

  /** The CLIENT span of one request the action makes; the caller finishes it. */
  request(method, path) {
    return new Span(this.#record, { name: `${method} ${path}`, kind: SPAN_KIND.client, traceId: this.traceId, parentSpanId: this.root.spanId })
      .set({ 'http.request.method': method, 'url.path': path });
  }

  /** The trace the gateway answered with (`x-trace-id`): its frames belong to this action too. */
  joined(traceId) {
    if (!traceId || this.traceIds.has(traceId)) return;
    this.traceIds.add(traceId);
    this.#tracer.alias(traceId, this.traceId);
  }

  /** Ends it: `frontend.outcome` is 'ok' or 'error', and `errorType` says why it failed. */
  end(outcome, errorType) {
    if (this.ended) return;
    this.root.set({ 'frontend.outcome': outcome });
    if (outcome === 'error') this.root.fail(errorType);
    this.root.finish();
    this.#tracer.ended(this);
  }

  /** Ends it by the status of its answer: ok below 400, else an error named by the status. */
  endWithStatus(status) {
    this.end(status < 400 ? 'ok' : 'error', String(status));
  }

  /**
   * Ends it when the live feed brings its frame of `type`, marked by an event on the root; or
   * after 10 s as an error (`feed_timeout`): the person never saw the result arrive. Answers
   * when the frame came (the browser's clock, epoch ms), or null.
   */
  endOnFrame(type) {
    return new Promise((resolve) => {
      const arrived = (frame) => {
        clearTimeout(timer);
        this.#waiting = null;
        this.root.addEvent('feed frame received', frame.at, { 'feed.event.type': frame.type, 'feed.event.id': frame.id });
        this.end('ok');
        resolve(frame.at);
      };
      const timer = setTimeout(() => {
        this.#waiting = null;
        this.end('error', 'feed_timeout');
        resolve(null);
      }, FRAME_TIMEOUT_MS);
      this.#waiting = { type, arrived };
      // The frame may have come before the answer did.
      const early = this.#tracer.recentFrame(this.traceIds, type);
      if (early) arrived(early);
    });
  }

  frameArrived(frame) {
    if (this.#waiting?.type === frame.type && this.traceIds.has(frame.traceId)) this.#waiting.arrived(frame);
  }
}

/** Spans waiting to leave, sent as one OTLP/HTTP JSON body when enough came or time passed. */
class Exporter {
  #endpoint;
  #resource;
  #spans = []; // each as its JSON text, so a batch's size is known before it is sent
  #bytes = 0;
  #timer = 0;

  constructor(endpoint, serviceName) {
    this.#endpoint = endpoint;
    this.#resource = JSON.stringify({ attributes: otlpAttributes({ 'service.name': serviceName }) });
  }

  add(span) {
    const json = JSON.stringify(span.toOtlp());
    const bytes = encoder.encode(json).length + 1;
    if (this.#bytes + bytes > BATCH_BYTES) this.flush();
    this.#spans.push(json);
    this.#bytes += bytes;
    this.#timer ||= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  /** Sends what is waiting; `keepalive` lets the request outlive the page. */
  flush({ keepalive = false } = {}) {
    clearTimeout(this.#timer);
    this.#timer = 0;
    if (!this.#spans.length) return;
    const body = `{"resourceSpans":[{"resource":${this.#resource},"scopeSpans":[{"scope":{"name":"gateway-page"},"spans":[${this.#spans.join(',')}]}]}]}`;
    this.#spans = [];
    this.#bytes = 0;
    // The page's work comes first: a batch the relay refuses or cannot take is dropped.
    fetch(this.#endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body, keepalive }).catch(() => {});
  }
}

/**
 * Starts the page's actions and exports their spans. Without a service name and an endpoint
 * (no /ui/config) it exports nothing, and its spans' requests send no traceparent.
 */
export class Tracer {
  #exporter;
  #unfinished = new Set();
  #recentFrames = [];
  #aliases = new Map(); // a trace the gateway started -> the page's trace it answered

  constructor({ service_name: serviceName, traces_endpoint: endpoint } = {}) {
    this.#exporter = serviceName && endpoint ? new Exporter(endpoint, serviceName) : null;
  }

  /** A root span for `action`, one of ACTIONS. */
  start(action) {
    if (!Object.hasOwn(ACTIONS, action)) throw new Error(`no such action: ${action}`);
    const record = this.#exporter && ((span) => this.#exporter.add(span));
    const started = new Action(this, record, action);
    this.#unfinished.add(started);
    return started;
  }

  /** A frame of the live feed: {traceId, type, id, at}. */
  frameArrived(frame) {
    this.#recentFrames.push(frame);
    if (this.#recentFrames.length > RECENT_FRAMES) this.#recentFrames.shift();
    for (const action of this.#unfinished) action.frameArrived(frame);
  }

  recentFrame(traceIds, type) {
    return this.#recentFrames.findLast((frame) => frame.type === type && traceIds.has(frame.traceId));
  }

  alias(gatewayTrace, pageTrace) {
    this.#aliases.set(gatewayTrace, pageTrace);
    if (this.#aliases.size > ALIASES) this.#aliases.delete(this.#aliases.keys().next().value);
  }

  /** The trace to link for `traceId`: the page's, when the gateway answered one of its requests in another. */
  pageTrace(traceId) {
    return this.#aliases.get(traceId) ?? traceId;
  }

  ended(action) {
    this.#unfinished.delete(action);
  }

  /** The page is going away: every action ends as it stands, and every span leaves. */
  pageHidden() {
    for (const action of [...this.#unfinished]) action.end('error', 'page_hidden');
    this.flush({ keepalive: true });
  }

  flush(options) {
    this.#exporter?.flush(options);
  }
}
