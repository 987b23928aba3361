// The gateway's page: create users, watch them arrive over the live feed, see every process's
// health. Plain ES module, no framework. Every request sends its own sampled W3C traceparent.

const $ = (id) => document.getElementById(id);
const MAX_ITEMS = 50; // per list
const HEALTH_EVERY = 5000;
const CHECK_DEBOUNCE = 300;
const HEX32 = /^[0-9a-f]{32}$/;

const state = {
  config: null,
  token: null, // development token, when it expires, the request fetching it
  tokenExpires: 0,
  tokenRequest: null,
  ready: false, // initial lists loaded; frames before that wait in `queue`
  queue: [],
  seenEvents: new Set(),
  users: new Map(), // user id -> <li>
  messageKeys: new Set(),
  mine: new Set(), // emails this tab created
  arrivals: new Map(), // user id -> when its frame arrived
  pending: null, // the last user created here: {id, sentAt}
};

// ---------- DOM

/** Builds an element: h('a', {class: 'x', href}, 'text', child). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.flat().filter((child) => child != null && child !== false));
  return el;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

function timeEl(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  const today = date.toDateString() === new Date().toDateString();
  return h('time', { datetime: iso, title: date.toLocaleString(), text: (today ? timeFormat : dateFormat).format(date) });
}

// ---------- Tracing

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** n random bytes as lower hex, never all zeros (an invalid id in W3C trace context). */
function randomHex(n) {
  const bytes = new Uint8Array(n);
  do crypto.getRandomValues(bytes);
  while (bytes.every((b) => b === 0));
  return toHex(bytes);
}

function newTraceparent() {
  const traceId = randomHex(16);
  return { traceId, header: `00-${traceId}-${randomHex(8)}-01` };
}

/** An http(s) URL from the config, or null. */
function safeUrl(value) {
  if (typeof value !== 'string' || !value) return null;
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href.replace(/\/$/, '') : null;
  } catch {
    return null;
  }
}

function traceLink(traceId, what) {
  const zipkin = safeUrl(state.config?.zipkin_url);
  if (!zipkin || !HEX32.test(traceId ?? '')) return null;
  return h('a', {
    class: 'trace-link',
    href: `${zipkin}/traces/${traceId}`,
    target: '_blank',
    rel: 'noopener',
    title: `Trace ${traceId}`,
    dataset: { traceId },
  }, 'Trace', h('span', { class: 'sr-only', text: ` of ${what} in Zipkin (opens in a new tab)` }));
}

// ---------- API

/**
 * fetch() with a fresh traceparent. Answers {ok, status, data, traceId, headers}: data is the
 * parsed JSON (or problem details) body, traceId the one the gateway echoed (else the one sent).
 */
async function api(path, { method = 'GET', body, headers = {}, signal } = {}) {
  const trace = newTraceparent();
  const init = { method, signal, headers: { accept: 'application/json, application/problem+json', traceparent: trace.header, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const response = await fetch(path, init);
  const echoed = response.headers.get('x-trace-id');
  const type = response.headers.get('content-type') ?? '';
  const data = type.includes('json') ? await response.json().catch(() => null) : null;
  return {
    ok: response.ok,
    status: response.status,
    data,
    traceId: HEX32.test(echoed ?? '') ? echoed : trace.traceId,
    headers: response.headers,
  };
}

// ---------- Lists

const initials = (name) => (String(name).trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join('') || '?').toUpperCase();
/** One of six avatar tones, stable per email. */
const tone = (text) => [...String(text)].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) >>> 0, 7) % 6;

function refreshList(kind) {
  const list = $(`${kind}-list`);
  while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
  $(`${kind}-count`).textContent = String(list.children.length);
  $(`${kind}-empty`).hidden = list.children.length > 0;
}

/** Marks the user's item as created in this tab. */
function markMine(li) {
  const title = li.querySelector('.item-title');
  if (!title.querySelector('.badge')) title.append(h('span', { class: 'badge', text: 'yours' }));
}

/** Lists a user: `live` ones (from a frame) go on top with their trace link. */
function addUser(user, { traceId, live = false } = {}) {
  if (!user || user.id == null) return;
  const existing = state.users.get(user.id);
  if (existing) {
    // Already listed at load: the frame only brings its trace link.
    const link = !existing.querySelector('.trace-link') && traceLink(traceId, `the creation of ${user.name}`);
    if (link) existing.querySelector('.item-meta').append(link);
    return;
  }
  const li = h('li', { class: live ? 'item is-new' : 'item', dataset: { email: user.email, userId: String(user.id) } },
    h('span', { class: `avatar tone-${tone(user.email)}`, 'aria-hidden': 'true', text: initials(user.name) }),
    h('div', { class: 'item-main' },
      h('p', { class: 'item-title' }, h('span', { class: 'name', text: user.name })),
      h('p', { class: 'item-sub', text: user.email })),
    h('div', { class: 'item-meta' }, timeEl(user.created_at), traceLink(traceId, `the creation of ${user.name}`)));
  if (state.mine.has(String(user.email).toLowerCase())) markMine(li);
  state.users.set(user.id, li);
  const list = $('users-list');
  if (live) list.prepend(li);
  else list.append(li);
  refreshList('users');
}

function addMessage(message, { traceId, live = false } = {}) {
  if (!message || typeof message.message !== 'string') return;
  const key = `${message.channel}\n${message.message}\n${message.created_at}`;
  if (state.messageKeys.has(key)) return;
  state.messageKeys.add(key);
  const li = h('li', { class: live ? 'item is-new' : 'item', dataset: { channel: message.channel } },
    h('span', { class: 'avatar avatar-bot', 'aria-hidden': 'true', text: '#' }),
    h('div', { class: 'item-main' }, h('p', { class: 'item-text', text: message.message })),
    h('div', { class: 'item-meta' }, timeEl(message.created_at), traceLink(traceId, 'this message')));
  const list = $('messages-list');
  if (live) list.prepend(li);
  else list.append(li);
  refreshList('messages');
}

/** One frame of /ws/events; the same event may come again after a reconnect. */
function onEvent(event) {
  if (!event || typeof event.id !== 'string' || state.seenEvents.has(event.id)) return;
  state.seenEvents.add(event.id);
  if (state.seenEvents.size > 1000) state.seenEvents.delete(state.seenEvents.values().next().value);
  const traceId = event.trace_id;
  if (event.type === 'user.created' && event.user) {
    if (!state.arrivals.has(event.user.id)) state.arrivals.set(event.user.id, performance.now());
    addUser(event.user, { traceId, live: true });
    showArrival();
  } else if (event.type === 'message.created' && event.message?.channel === '#user') {
    addMessage(event.message, { traceId, live: true });
  }
}

async function loadLists() {
  const [users, messages] = await Promise.allSettled([
    api('/users?limit=20'),
    api(`/messages?${new URLSearchParams({ channel: '#user', limit: '20' })}`),
  ]);
  if (users.value?.ok && Array.isArray(users.value.data)) users.value.data.forEach((user) => addUser(user));
  else $('users-empty').textContent = 'The users could not be loaded; new ones still appear here live.';
  if (messages.value?.ok && Array.isArray(messages.value.data)) messages.value.data.forEach((message) => addMessage(message));
  else $('messages-empty').textContent = 'The messages could not be loaded; new ones still appear here live.';
  state.ready = true;
  state.queue.splice(0).forEach(onEvent);
}

// ---------- Live feed

const live = { socket: null, delay: 500, timer: 0, openedAt: 0, failures: 0 };
const CONN_LABELS = { connecting: 'Connecting…', connected: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

function setConn(status, detail) {
  const conn = $('conn');
  conn.className = `conn is-${status}`;
  $('conn-label').textContent = CONN_LABELS[status];
  conn.title = detail ?? (status === 'connected' ? 'Receiving events as they happen' : '');
}

function connectLive() {
  clearTimeout(live.timer);
  const url = new URL('/ws/events', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('types', 'user.created,message.created');
  if (!live.failures) setConn('connecting');
  const socket = new WebSocket(url);
  live.socket = socket;
  socket.addEventListener('open', () => {
    live.openedAt = Date.now();
    setConn('connected');
  });
  socket.addEventListener('message', (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return; // not a frame of ours
    }
    if (state.ready) onEvent(event);
    else state.queue.push(event);
  });
  socket.addEventListener('close', (close) => {
    if (live.socket !== socket) return;
    // A connection that lasted resets the backoff (1013/1008: too slow, 1001: going away).
    if (live.openedAt && Date.now() - live.openedAt >= 5000) {
      live.delay = 500;
      live.failures = 0;
    }
    live.openedAt = 0;
    live.failures += 1;
    scheduleReconnect(close.code);
  });
}

/** Exponential backoff, 0.5 s doubling to 15 s, with a little jitter. */
function scheduleReconnect(code) {
  if (!navigator.onLine) return setConn('offline', 'This device is offline; the feed comes back with the network');
  const delay = Math.round(Math.min(live.delay * (0.85 + Math.random() * 0.3), 15000));
  live.delay = Math.min(live.delay * 2, 15000);
  const detail = `Closed (${code}); next try in ${Math.ceil(delay / 1000)} s`;
  setConn(live.failures >= 5 ? 'offline' : 'reconnecting', detail);
  live.timer = setTimeout(connectLive, delay);
}

addEventListener('online', () => {
  if (live.socket && live.socket.readyState <= WebSocket.OPEN) return;
  live.delay = 500;
  connectLive();
});
addEventListener('offline', () => setConn('offline', 'This device is offline'));

// ---------- Health

const healthState = new Map(); // process -> up (true/false/null)

function renderHealth(rows) {
  const list = $('health-list');
  const changes = [];
  for (const row of rows) {
    let li = list.querySelector(`li[data-process="${CSS.escape(row.name)}"]`);
    if (!li) {
      li = h('li', { dataset: { process: row.name } },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        h('span', { class: 'process', text: row.name }),
        h('span', { class: 'state' }),
        h('span', { class: 'ms' }),
        h('p', { class: 'error' }));
      list.append(li);
    }
    const status = row.up === null ? 'unknown' : row.up ? 'up' : 'down';
    li.className = `health-row is-${status}`;
    li.querySelector('.state').textContent = { up: 'Up', down: 'Down', unknown: 'Unknown' }[status];
    li.querySelector('.ms').textContent = Number.isFinite(row.time) ? `${row.time} ms` : '';
    li.querySelector('.error').textContent = row.error ?? '';
    const before = healthState.get(row.name);
    if (before !== undefined && before !== row.up && row.up !== null) {
      changes.push(row.up ? `${row.name} is up again` : `${row.name} is down${row.error ? `: ${row.error}` : ''}`);
    }
    healthState.set(row.name, row.up);
  }
  const down = rows.filter((row) => row.up === false).length;
  const summary = $('health-summary');
  summary.textContent = down ? `${down} down` : 'All up';
  summary.className = `pill ${down ? 'is-bad' : 'is-good'}`;
  $('health-updated').textContent = `Updated ${timeFormat.format(new Date())} · refreshed every 5 s`;
  if (changes.length) $('health-announce').textContent = changes.join('. ');
}

async function refreshHealth() {
  const started = performance.now();
  let result = null;
  try {
    result = await api('/health', { signal: AbortSignal.timeout(4000) });
  } catch {
    // unreachable: reported below
  }
  const rows = [];
  if (result) {
    // The gateway is up if it answered at all; each process as it reports (200 or 503).
    const report = [200, 503].includes(result.status) && result.data && typeof result.data === 'object' ? result.data : null;
    const note = report ? null : `answered ${result.status} to /health`;
    rows.push({ name: 'gateway', up: true, time: Math.round(performance.now() - started), error: note });
    if (!report) for (const name of healthState.keys()) if (name !== 'gateway') rows.push({ name, up: null });
    for (const [name, check] of Object.entries(report ?? {})) {
      const up = Boolean(check) && !check.error && 'response' in check;
      rows.push({ name, up, time: check?.time, error: check?.error ?? (up ? null : 'no answer') });
    }
  } else {
    rows.push({ name: 'gateway', up: false, error: 'cannot be reached' });
    for (const name of healthState.keys()) if (name !== 'gateway') rows.push({ name, up: null });
  }
  renderHealth(rows);
  setTimeout(refreshHealth, HEALTH_EVERY);
}

// ---------- Form

const form = $('user-form');
const nameInput = $('name');
const emailInput = $('email');
const tokenInput = $('token');
const submitButton = $('submit');
const formMsg = $('form-msg');
const FIELDS = { '/name': nameInput, '/email': emailInput };

/** The message under a field: kind is 'error', 'ok' or null (then the field's hint). */
function setFieldMsg(input, text, kind = null) {
  const msg = $(`${input.id}-msg`);
  msg.dataset.hint ??= msg.textContent;
  msg.textContent = text || msg.dataset.hint;
  msg.className = kind ? `field-msg is-${kind}` : 'field-msg';
  if (kind === 'error') input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

function setFormMsg(kind, ...content) {
  formMsg.replaceChildren(content.length ? h('div', { class: `notice is-${kind}` }, ...content) : '');
}

/** The detail of the problem's error at `pointer` (#/email), if any. */
function fieldDetail(problem, pointer) {
  const errors = Array.isArray(problem?.errors) ? problem.errors : [];
  return errors.find((error) => error?.pointer === pointer)?.detail ?? null;
}

// The email is checked as it is typed: debounced, the stale check cancelled. Only a value that
// can be an email is checked while typing (no "invalid" shouted at "ada@"); any value on change.
const check = { timer: 0, controller: null, value: '' };
const LOOKS_LIKE_EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@.]+$/;

function cancelCheck() {
  clearTimeout(check.timer);
  check.controller?.abort();
  check.controller = null;
}

emailInput.addEventListener('input', () => {
  cancelCheck();
  check.value = '';
  setFieldMsg(emailInput, '');
  const value = emailInput.value.trim();
  if (LOOKS_LIKE_EMAIL.test(value)) check.timer = setTimeout(() => checkEmail(value), CHECK_DEBOUNCE);
});

emailInput.addEventListener('change', () => {
  const value = emailInput.value.trim();
  if (value && value !== check.value && !check.controller) {
    cancelCheck();
    checkEmail(value);
  }
});

async function checkEmail(value) {
  const controller = new AbortController();
  check.controller = controller;
  check.value = value;
  const timeout = setTimeout(() => controller.abort(), 3000);
  try {
    const result = await api(`/users/availability?${new URLSearchParams({ email: value })}`, { signal: controller.signal });
    if (controller.signal.aborted) return;
    if (result.status === 200 && result.data) {
      const email = result.data.email ?? value;
      if (result.data.available) setFieldMsg(emailInput, `${email} is available`, 'ok');
      else setFieldMsg(emailInput, `${email} is already taken`, 'error');
    } else if (result.status === 400) {
      setFieldMsg(emailInput, fieldDetail(result.data, '#/email') ?? result.data?.detail ?? 'is not a valid email address', 'error');
    }
    // 503/504 or anything else: the check cannot answer, the submit still works.
  } catch {
    // aborted (stale or too slow) or offline: nothing to say
  } finally {
    clearTimeout(timeout);
    if (check.controller === controller) check.controller = null;
  }
}

/** The bearer token: the development one, fetched by the page, or the one typed in. */
async function bearerToken() {
  if (state.config?.development === true) {
    if (!state.token || Date.now() > state.tokenExpires - 60_000) {
      // One request at a time: the start-up fetch and a quick first submit share it.
      state.tokenRequest ??= api('/dev/token', { method: 'POST' }).finally(() => { state.tokenRequest = null; });
      const result = await state.tokenRequest;
      if (!result.ok || typeof result.data?.token !== 'string') throw result;
      state.token = result.data.token;
      state.tokenExpires = Date.now() + (Number(result.data.expires_in) || 3600) * 1000;
    }
    return state.token;
  }
  const token = tokenInput.value.trim().replace(/^Bearer\s+/i, '');
  if (!token) {
    setFieldMsg(tokenInput, 'Paste a bearer token to create users.', 'error');
    tokenInput.focus();
    return null;
  }
  return token;
}

async function postUser(user) {
  const token = await bearerToken();
  if (!token) return null;
  return api('/user', { method: 'POST', body: user, headers: { authorization: `Bearer ${token}` } });
}

function clearErrors() {
  for (const input of [nameInput, emailInput, tokenInput]) {
    if (input.getAttribute('aria-invalid') === 'true') setFieldMsg(input, '');
  }
  setFormMsg();
}

/** "slow down" -> "slow down." (the capital comes from the style). */
const sentence = (text) => (/[.!?]$/.test(text) ? text : `${text}.`);

/** A problem: field errors by their fields, anything else as a form-level message. */
function showProblem(result) {
  const problem = result.data && typeof result.data === 'object' ? result.data : {};
  const detail = sentence(problem.detail || problem.title || `The gateway answered ${result.status}`);
  const lines = [];
  let firstField = null;
  for (const error of Array.isArray(problem.errors) ? problem.errors : []) {
    const input = FIELDS[String(error?.pointer ?? '').replace(/^#/, '')];
    if (input) {
      setFieldMsg(input, error.detail, 'error');
      firstField ??= input;
    } else if (error?.detail) {
      lines.push(`${error.pointer ?? 'request'}: ${error.detail}`);
    }
  }
  if (result.status === 409) {
    setFieldMsg(emailInput, 'is already taken', 'error');
    firstField = emailInput;
  }
  if (result.status === 401 && state.config?.development !== true) {
    setFieldMsg(tokenInput, 'This token is not accepted.', 'error');
    firstField = tokenInput;
  }
  let retry = '';
  if (result.status === 429) {
    const seconds = Number(result.headers?.get('retry-after'));
    retry = Number.isFinite(seconds) && seconds > 0 ? ` Try again in ${seconds} s.` : ' Try again shortly.';
  }
  setFormMsg('error',
    h('p', { text: `${detail}${retry}` }),
    lines.length ? h('ul', {}, lines.map((line) => h('li', { text: line }))) : null,
    traceLink(result.traceId, 'this request'));
  firstField?.focus();
}

/** Once the new user's frame has arrived, says how long the live feed took. */
function showArrival() {
  const pending = state.pending;
  const at = pending && state.arrivals.get(pending.id);
  const slot = formMsg.querySelector('.arrival');
  if (!at || !slot) return;
  slot.textContent = `Arrived on the live feed ${Math.max(0, Math.round(at - pending.sentAt))} ms after the request.`;
  const li = state.users.get(pending.id);
  if (li) markMine(li);
  state.pending = null;
}

let busy = false;

form.addEventListener('submit', async (submit) => {
  submit.preventDefault();
  if (busy) return;
  clearErrors();
  const user = { name: nameInput.value.trim(), email: emailInput.value.trim() };
  busy = true;
  submitButton.setAttribute('aria-busy', 'true');
  submitButton.setAttribute('aria-disabled', 'true');
  const sentAt = performance.now();
  state.mine.add(user.email.toLowerCase());
  try {
    let result = await postUser(user);
    if (result?.status === 401 && state.config?.development === true) {
      state.token = null; // expired or from a restarted gateway: one more try with a new one
      result = await postUser(user);
    }
    if (!result) return;
    if (result.status === 201 && result.data) {
      const created = result.data;
      state.mine.add(String(created.email).toLowerCase());
      state.pending = { id: created.id, sentAt };
      nameInput.value = ''; // not form.reset(): the bearer token stays
      emailInput.value = '';
      cancelCheck();
      for (const input of [nameInput, emailInput]) setFieldMsg(input, '');
      setFormMsg('success',
        h('p', {}, 'Created ', h('strong', { text: created.name }), ` (${created.email}), id ${created.id}.`),
        h('p', { class: 'arrival muted', text: 'Waiting for it on the live feed…' }),
        traceLink(result.traceId, `the creation of ${created.name}`));
      showArrival();
    } else {
      showProblem(result);
    }
  } catch (error) {
    if (error && typeof error.status === 'number') showProblem(error); // no development token
    else setFormMsg('error', h('p', { text: 'The gateway cannot be reached. Check that it runs and try again.' }));
  } finally {
    busy = false;
    submitButton.removeAttribute('aria-busy');
    submitButton.removeAttribute('aria-disabled');
  }
});

// The field's own error goes as soon as it is edited.
for (const input of [nameInput, tokenInput]) {
  input.addEventListener('input', () => {
    if (input.getAttribute('aria-invalid') === 'true') setFieldMsg(input, '');
  });
}

tokenInput.addEventListener('input', () => sessionStorage.setItem('bearer-token', tokenInput.value.trim()));

// ---------- Faults (development mode: the page's token is an admin's)

const FAULT_REFRESH = 5000;
const faultForm = $('fault-form');
const faultFields = {
  kind: $('fault-kind'),
  service: $('fault-service'),
  route: $('fault-route'),
  delay_ms: $('fault-delay'),
  status: $('fault-status'),
  probability: $('fault-probability'),
  ttl_seconds: $('fault-ttl'),
};
const ROUTED = new Set(['latency', 'error']);
const DELAYED = new Set(['latency', 'webhook_latency', 'consumer_latency']);
const faults = { list: [], timer: 0 };

/** A fault in force, asked for again with the time it has left (PUT replaces the whole set). */
function faultRequest(fault) {
  const request = {
    kind: fault.kind,
    probability: fault.probability,
    ttl_seconds: Math.max(1, Math.round((Date.parse(fault.expires_at) - Date.now()) / 1000)),
  };
  if (ROUTED.has(fault.kind)) request.service = fault.services[0];
  if (fault.route) request.route = fault.route;
  if (DELAYED.has(fault.kind)) request.delay_ms = fault.delay_ms;
  if (fault.kind === 'error') request.status = fault.status;
  return request;
}

function describeFault(fault) {
  const where = `${fault.services.join(', ')}${fault.route ? ` ${fault.route}` : ''}`;
  const what = DELAYED.has(fault.kind) ? `+${fault.delay_ms} ms` : fault.kind === 'error' ? `${fault.status}` : '';
  const share = fault.probability < 1 ? ` · ${Math.round(fault.probability * 100)} %` : '';
  return `${fault.kind} · ${where}${what ? ` · ${what}` : ''}${share}`;
}

function renderFaults() {
  const items = faults.list.map((fault) => h('li', { class: 'item fault-item', dataset: { kind: fault.kind } },
    h('span', { class: 'avatar avatar-bot', 'aria-hidden': 'true', text: '!' }),
    h('div', { class: 'item-main' },
      h('p', { class: 'item-title', text: describeFault(fault) }),
      h('p', { class: 'item-sub', text: `ends ${timeFormat.format(new Date(fault.expires_at))}` }))));
  $('faults-list').replaceChildren(...items);
  $('faults-count').textContent = String(faults.list.length);
  $('faults-empty').hidden = faults.list.length > 0;
}

function setFaultMsg(kind, text) {
  $('fault-msg').replaceChildren(text ? h('div', { class: `notice is-${kind}` }, h('p', { text })) : '');
}

async function adminApi(path, options = {}) {
  const token = await bearerToken();
  return api(path, { ...options, headers: { authorization: `Bearer ${token}` } });
}

/** Reads the set; false when the gateway has no fault switch (FAULTS_ENABLED=false). */
async function loadFaults() {
  clearTimeout(faults.timer);
  try {
    const result = await adminApi('/admin/faults');
    if (result.status === 404) return false;
    if (result.ok && Array.isArray(result.data)) {
      faults.list = result.data;
      renderFaults();
    }
  } catch {
    // offline for now: the next refresh tries again
  }
  faults.timer = setTimeout(loadFaults, FAULT_REFRESH);
  return true;
}

function showFaultFields() {
  const kind = faultFields.kind.value;
  for (const field of faultForm.querySelectorAll('[data-for]')) {
    field.hidden = !field.dataset.for.split(' ').includes(kind);
  }
}

/** The fault the form asks for: only the fields its kind has. */
function askedFault() {
  const kind = faultFields.kind.value;
  const request = {
    kind,
    probability: Number(faultFields.probability.value),
    ttl_seconds: Number(faultFields.ttl_seconds.value),
  };
  if (ROUTED.has(kind)) {
    request.service = faultFields.service.value;
    const route = faultFields.route.value.trim();
    if (route) request.route = route;
  }
  if (DELAYED.has(kind)) request.delay_ms = Number(faultFields.delay_ms.value);
  if (kind === 'error') request.status = Number(faultFields.status.value);
  return request;
}

async function replaceFaults(set, done) {
  for (const input of Object.values(faultFields)) setFieldMsg(input, '');
  const result = await adminApi('/admin/faults', { method: 'PUT', body: set });
  if (result.ok) {
    faults.list = result.data;
    renderFaults();
    setFaultMsg('success', done);
    return;
  }
  // The new fault is the last of the set: its errors go by its fields.
  const index = set.length - 1;
  let named = false;
  for (const [field, input] of Object.entries(faultFields)) {
    const detail = fieldDetail(result.data, `#/${index}/${field}`);
    if (detail) {
      setFieldMsg(input, detail, 'error');
      named = true;
    }
  }
  setFaultMsg('error', named ? 'The fault was not switched on: see the fields.' : result.data?.detail ?? `The gateway answered ${result.status}.`);
}

faultFields.kind.addEventListener('change', showFaultFields);
faultForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const submit = $('fault-submit');
  submit.setAttribute('aria-busy', 'true');
  try {
    const asked = askedFault();
    await replaceFaults([...faults.list.map(faultRequest), asked], `Switched on: ${asked.kind}.`);
  } catch {
    setFaultMsg('error', 'The gateway could not be reached.');
  } finally {
    submit.removeAttribute('aria-busy');
  }
});
$('faults-clear').addEventListener('click', async () => {
  try {
    const result = await adminApi('/admin/faults', { method: 'DELETE' });
    if (result.ok) {
      faults.list = [];
      renderFaults();
      setFaultMsg('success', 'Every fault is off.');
    } else {
      setFaultMsg('error', result.data?.detail ?? `The gateway answered ${result.status}.`);
    }
  } catch {
    setFaultMsg('error', 'The gateway could not be reached.');
  }
});

async function startFaults() {
  showFaultFields();
  if (await loadFaults()) $('faults-card').hidden = false;
}

// ---------- Start

async function loadConfig() {
  try {
    const result = await api('/ui/config');
    if (result.ok && result.data && typeof result.data === 'object') return result.data;
  } catch {
    // below
  }
  setFormMsg('error', h('p', { text: 'The page could not read its configuration; paste a bearer token to create users.' }));
  return {};
}

async function start() {
  state.config = await loadConfig();
  for (const link of document.querySelectorAll('a[data-config]')) {
    const url = safeUrl(state.config[link.dataset.config]);
    if (url) {
      link.href = url;
      link.hidden = false;
    }
  }
  if (state.config.development !== true) {
    $('token-field').hidden = false;
    tokenInput.value = sessionStorage.getItem('bearer-token') ?? '';
  } else {
    bearerToken().catch(() => {}); // ready before the first submit; retried then if it failed
    startFaults();
  }
  connectLive();
  refreshHealth();
  await loadLists();
}

start();
