// Drives the gateway's page in Debian's headless Chromium.
//
//   GATEWAY_URL=http://127.0.0.1:8080 ADMIN_TOKEN="$(mint-token --admin)" SCREENSHOT_DIR=/tmp/shots node page.test.mjs
//
// A gateway in development mode hands the page its token; one with a real key makes the page
// ask for a "Bearer token": then set BEARER_TOKEN. ADMIN_TOKEN is pasted into the fault panel,
// which must then show, and switches a fault on and off. CHROMIUM overrides /usr/bin/chromium.
//
// The page's own spans are read as it posts them to /otlp/v1/traces: the click on "Create user"
// must be a root span with the POST /user as its CLIENT child (the traceparent's parent-id) and
// the feed frame's arrival as an event; every traceparent the page sends must be the id of a
// span it exports, whose parent is a root it exports too.
//
// On success prints one JSON line on stdout, for the caller to find that trace in Zipkin:
//   {"ok":true,"created_email":"...","trace_id":"<32 hex>","root_span_id":"<16 hex>",
//    "client_span_id":"<16 hex>","screenshots":[...]}
// On any miss prints the reason on stderr and exits 1. Progress goes to stderr.
//
// Console rule: every `pageerror` fails the run, and so does every console message of type
// error or warning, except Chromium's own network line ("Failed to load resource: the server
// responded with a status of N") for a response this run provokes on purpose (the 400 of the
// empty Name, matched by URL and status, once each) or a 503 of /health (its answer when a
// process is down).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

const GATEWAY_URL = process.env.GATEWAY_URL;
const SCREENSHOT_DIR = resolve(process.env.SCREENSHOT_DIR || 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BEARER_TOKEN = process.env.BEARER_TOKEN;
const ADMIN_TOKEN = process.env.ADMIN_TOKEN;
const HEX32 = /^[0-9a-f]{32}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const LIVE_WITHIN_MS = 2000;
// The page sends its spans in batches within 2 s of their end.
const EXPORTED_WITHIN_MS = 6000;
const OTLP_MAX_BYTES = 64 * 1024;
const SPAN_KIND = { internal: 1, client: 3 };

const log = (...args) => console.error('[page.test]', ...args);

class Miss extends Error {}
function check(condition, message) {
  if (!condition) throw new Miss(message);
}

if (!GATEWAY_URL) {
  console.error('page.test: GATEWAY_URL is required (the gateway serving the page, e.g. http://127.0.0.1:8080)');
  process.exit(1);
}
const base = new URL(GATEWAY_URL);
const isPath = (method, path) => (request) =>
  request.method() === method && new URL(request.url()).origin === base.origin && new URL(request.url()).pathname === path;
const responseTo = (method, path) => (response) => isPath(method, path)(response.request());

// ---------- Console, traceparent and span watch, for the whole run

const consoleMisses = [];
const expectedStatuses = []; // {url, status}: network errors this run provokes on purpose
const NETWORK_LINE = /^Failed to load resource: the server responded with a status of (\d{3})/;
const sent = []; // {method, path, traceId, spanId}: every request that carried a traceparent
const exported = []; // every span the page posted to /otlp/v1/traces, as OTLP JSON
let serviceName = null; // the resource's service.name, which /ui/config names

function watch(page) {
  page.on('pageerror', (error) => consoleMisses.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    const type = message.type();
    if (type !== 'error' && type !== 'warning') return;
    const text = message.text();
    const url = message.location()?.url ?? '';
    const network = NETWORK_LINE.exec(text);
    if (network && type === 'error') {
      const status = Number(network[1]);
      const at = expectedStatuses.findIndex((e) => e.url === url && e.status === status);
      if (at >= 0) return void expectedStatuses.splice(at, 1);
      if (status === 503 && new URL(url, base).pathname === '/health') return;
    }
    consoleMisses.push(`console ${type}: ${text}${url ? ` (${url})` : ''}`);
  });
  page.on('request', (request) => {
    if (!['fetch', 'xhr'].includes(request.resourceType())) return;
    const url = new URL(request.url());
    const header = request.headers().traceparent;
    if (url.origin === base.origin && url.pathname === '/otlp/v1/traces') return void readExport(request, header);
    // Requests no action made (the health poll, the configuration) send none: the gateway
    // starts their traces.
    if (header === undefined) return;
    const match = TRACEPARENT.exec(header);
    if (!match || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) {
      consoleMisses.push(`${request.method()} ${url.pathname} sent an invalid or unsampled traceparent (${header})`);
    } else if (sent.some((context) => context.spanId === match[2])) {
      consoleMisses.push(`${request.method()} ${url.pathname} reused span id ${match[2]}`);
    } else {
      sent.push({ method: request.method(), path: url.pathname, traceId: match[1], spanId: match[2] });
    }
  });
}

/** One batch of the page's spans: OTLP/HTTP JSON, under the relay's limit, from the page's service. */
function readExport(request, traceparent) {
  const body = request.postData() ?? '';
  const problems = [];
  if (traceparent !== undefined) problems.push('carries a traceparent');
  if (!/^application\/json\b/.test(request.headers()['content-type'] ?? '')) problems.push(`is ${request.headers()['content-type']}, not application/json`);
  if (Buffer.byteLength(body) > OTLP_MAX_BYTES) problems.push(`is ${Buffer.byteLength(body)} bytes, over 64 KiB`);
  let batch = null;
  try {
    batch = JSON.parse(body);
  } catch {
    problems.push('is not JSON');
  }
  for (const resourceSpans of batch?.resourceSpans ?? []) {
    const name = attribute(resourceSpans.resource, 'service.name');
    if (name !== serviceName) problems.push(`names service ${name}, not ${serviceName}`);
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) exported.push(...(scopeSpans.spans ?? []));
  }
  if (problems.length) consoleMisses.push(`the span export ${problems.join(', ')}`);
}

/** An OTLP attribute's value, as a string or a boolean; undefined when absent. */
function attribute(holder, key) {
  const value = holder?.attributes?.find((a) => a.key === key)?.value;
  return value && (value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue);
}

// ---------- Helpers

/** The text of the elements an input's aria-describedby points at. */
const description = (locator) =>
  locator.evaluate((el) => (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)?.textContent ?? '').join(' ').trim());

async function waitForDescription(locator, pattern, timeout, what) {
  const deadline = Date.now() + timeout;
  let text = '';
  while (Date.now() < deadline) {
    text = await description(locator);
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Miss(`${what}: expected ${pattern} next to the field within ${timeout} ms, saw "${text}"`);
}

const unique = () => randomBytes(5).toString('hex');

async function waitForSpan(test, what) {
  const deadline = Date.now() + EXPORTED_WITHIN_MS;
  while (Date.now() < deadline) {
    const span = exported.find(test);
    if (span) return span;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Miss(`the page exported no ${what} within ${EXPORTED_WITHIN_MS} ms; it exported:\n  ${exported.map((s) => `${s.name} ${s.traceId}/${s.spanId}`).join('\n  ')}`);
}

/** The root span of an action's trace: the trace's span with no parent. */
const rootOf = (traceId, what) => waitForSpan((span) => span.traceId === traceId && !span.parentSpanId, `root span of ${what}`);
const nanos = (value) => BigInt(value);

/** The action's root: its name, `frontend.action` and `frontend.outcome` (and `error.type`). */
function checkRoot(root, { name, action, outcome, errorType }) {
  const seen = `${root.name} (${attribute(root, 'frontend.action')}, ${attribute(root, 'frontend.outcome')}, ${attribute(root, 'error.type')})`;
  check(root.name === name && root.kind === SPAN_KIND.internal, `the root span is ${seen}, not "${name}"`);
  check(attribute(root, 'frontend.action') === action && attribute(root, 'frontend.outcome') === outcome, `the root span is ${seen}, not ${action} ${outcome}`);
  if (errorType) check(attribute(root, 'error.type') === errorType && root.status?.code === 2, `the root span is ${seen}, not failed with ${errorType}`);
}

/** A request's CLIENT span: the child of the root, with the id its traceparent sent. */
function checkClient(context, root, status) {
  const span = exported.find((s) => s.spanId === context.spanId && s.traceId === context.traceId);
  check(span, `${context.method} ${context.path} sent span id ${context.spanId}, which the page never exported`);
  check(span.kind === SPAN_KIND.client && span.parentSpanId === root.spanId, `the span of ${context.method} ${context.path} is no CLIENT child of its action's root`);
  const seen = [attribute(span, 'http.request.method'), attribute(span, 'url.path'), attribute(span, 'http.response.status_code')];
  check(seen.join(' ') === `${context.method} ${context.path} ${status}`, `the span of ${context.method} ${context.path} says ${seen.join(' ')}`);
  return span;
}

/** A waitForRequest/Response promise that never rejects unhandled if the run stops first. */
function later(promise) {
  promise.catch(() => {});
  return promise;
}

// ---------- The run

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  watch(page);
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const screenshots = [];
  const config = await (await fetch(new URL('/ui/config', base))).json();
  serviceName = config.frontend?.service_name;
  check(serviceName && config.frontend?.traces_endpoint === '/otlp/v1/traces',
    `/ui/config names no frontend service and traces endpoint: ${JSON.stringify(config.frontend)}`);

  // 1. The page loads and its live feed connects.
  log('loading', base.href);
  const answer = await page.goto(base.href, { waitUntil: 'load' });
  check(answer?.ok(), `GET / answered ${answer?.status()}`);
  await page.locator('#conn.is-connected').waitFor({ timeout: 10_000 }).catch(() => {
    throw new Miss('the live feed did not connect within 10 s (the connection indicator never said Live)');
  });
  await page.locator('#health-list li').first().waitFor();

  const name = page.getByLabel('Name', { exact: true });
  const email = page.getByLabel('Email', { exact: true });
  const button = page.getByRole('button', { name: 'Create user' });
  const token = page.getByLabel('Bearer token', { exact: true });
  if (await token.isVisible()) {
    check(BEARER_TOKEN, 'the page asks for a Bearer token (the gateway is not in development mode): set BEARER_TOKEN');
    await token.fill(BEARER_TOKEN);
  }

  // 2. A created user appears in the live list, with the trace the page sent.
  const id = unique();
  const createdEmail = `page-${id}@example.com`;
  const createdName = `Page Test ${id}`;
  await name.fill(createdName);
  await email.fill(createdEmail);
  const posted = later(page.waitForRequest(isPath('POST', '/user')));
  const created = later(page.waitForResponse(responseTo('POST', '/user')));
  const clickedAt = Date.now();
  await button.click();
  const item = page.locator(`#users-list li[data-email="${createdEmail}"]`);
  const link = item.locator('a.trace-link');
  await link.waitFor({ timeout: LIVE_WITHIN_MS }).catch(() => {
    throw new Miss(`${createdEmail} did not appear in the live list with its trace link within ${LIVE_WITHIN_MS} ms of the click`);
  });
  const arrivedMs = Date.now() - clickedAt;
  const [request, response] = await Promise.all([posted, created]);
  check(response.status() === 201, `POST /user answered ${response.status()}: ${await response.text()}`);
  const traceId = await link.getAttribute('data-trace-id');
  check(HEX32.test(traceId ?? ''), `the list's trace link has no 32-hex data-trace-id: ${traceId}`);
  const clickContext = TRACEPARENT.exec((await request.allHeaders()).traceparent ?? '');
  check(clickContext, 'POST /user sent no sampled traceparent');
  check(clickContext[1] === traceId, `the list's trace id ${traceId} is not the one the page sent (${clickContext[1]})`);
  const echoed = (await response.allHeaders())['x-trace-id'];
  check(echoed === traceId, `the list's trace id ${traceId} is not the x-trace-id ${echoed} of POST /user`);
  const href = await link.getAttribute('href');
  check(href?.endsWith(`/traces/${traceId}`), `the trace link goes to ${href}`);
  check((await link.getAttribute('target')) === '_blank' && /noopener/.test((await link.getAttribute('rel')) ?? ''),
    'the trace link does not open in a new tab with rel=noopener');
  check((await name.inputValue()) === '' && (await email.inputValue()) === '', 'the form was not cleared after the 201');
  await page.locator('#form-msg').getByText(createdEmail).waitFor({ timeout: 1000 }).catch(() => {
    throw new Miss('no success line names the created user');
  });
  await page.locator('#form-msg .arrival', { hasText: /Arrived on the live feed \d+ ms after the click/ }).waitFor({ timeout: 1000 }).catch(() => {
    throw new Miss('the success line does not say when the user arrived on the live feed');
  });
  log(`created ${createdEmail}: listed live after ${arrivedMs} ms, trace ${traceId}`);

  // The click is the root of that trace, on the browser's clock: its POST /user the CLIENT
  // child the gateway continued, then the feed frame's arrival, then its end.
  const root = await rootOf(traceId, 'the click on Create user');
  checkRoot(root, { name: 'click Create user', action: 'create_user', outcome: 'ok' });
  const client = checkClient({ method: 'POST', path: '/user', traceId, spanId: clickContext[2] }, root, 201);
  const frame = root.events?.find((event) => event.name === 'feed frame received');
  check(frame && attribute(frame, 'feed.event.type') === 'user.created', `the root span has no "feed frame received" event of user.created: ${JSON.stringify(root.events)}`);
  const times = [root.startTimeUnixNano, client.startTimeUnixNano, client.endTimeUnixNano, frame.timeUnixNano, root.endTimeUnixNano].map(nanos);
  check(times.every((time, i) => i === 0 || times[i - 1] <= time),
    `the click's times are out of order (root start, POST start, POST end, frame, root end): ${times.join(', ')}`);
  const skew = Number(times[0] / 1_000_000n) - clickedAt;
  check(Math.abs(skew) < 1000, `the root span starts ${skew} ms from the click: not the browser's clock`);
  log(`the click is the root span ${root.spanId}: POST /user ${client.spanId}, the frame ${Number((times[3] - times[0]) / 1_000_000n)} ms after the click`);
  screenshots.push(join(SCREENSHOT_DIR, 'page-desktop.png'));
  await page.screenshot({ path: screenshots.at(-1), fullPage: true });

  // 3. The taken email is reported next to Email before submitting.
  const checking = later(page.waitForRequest(isPath('GET', '/users/availability')));
  const availability = later(page.waitForResponse(responseTo('GET', '/users/availability')));
  await email.fill(createdEmail);
  const checked = await availability;
  check(checked.status() === 200, `GET /users/availability answered ${checked.status()}`);
  await waitForDescription(email, /already taken/i, 2000, 'the taken email');
  check((await email.getAttribute('aria-invalid')) === 'true', 'the taken email is not marked aria-invalid');
  const checkContext = TRACEPARENT.exec((await (await checking).allHeaders()).traceparent ?? '');
  check(checkContext, 'GET /users/availability sent no sampled traceparent');
  const checkRootSpan = await rootOf(checkContext[1], 'the email check');
  checkRoot(checkRootSpan, { name: 'check email', action: 'check_email', outcome: 'ok' });
  checkClient({ method: 'GET', path: '/users/availability', traceId: checkContext[1], spanId: checkContext[2] }, checkRootSpan, 200);
  log('taken email reported before submitting, as the action "check email"');

  // 4. An empty Name: the server's detail by the Name field; the click's root says it failed.
  await name.fill('');
  await email.fill(`page-${unique()}@example.com`);
  const refusedRequest = later(page.waitForRequest(isPath('POST', '/user')));
  const rejected = later(page.waitForResponse(responseTo('POST', '/user')));
  expectedStatuses.push({ url: new URL('/user', base).href, status: 400 });
  await button.click();
  const invalid = await rejected;
  check(invalid.status() === 400, `POST /user with an empty name answered ${invalid.status()}`);
  const problem = await invalid.json().catch(() => null);
  const detail = problem?.errors?.find((error) => error.pointer === '#/name')?.detail;
  check(typeof detail === 'string' && detail, `the 400 names no #/name error: ${JSON.stringify(problem)}`);
  const escaped = detail.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await waitForDescription(name, new RegExp(escaped, 'i'), 2000, 'the empty Name');
  check((await name.getAttribute('aria-invalid')) === 'true', 'the empty Name is not marked aria-invalid');
  const refusedContext = TRACEPARENT.exec((await (await refusedRequest).allHeaders()).traceparent ?? '');
  check(refusedContext, 'the refused POST /user sent no sampled traceparent');
  const refusedRoot = await rootOf(refusedContext[1], 'the refused click');
  checkRoot(refusedRoot, { name: 'click Create user', action: 'create_user', outcome: 'error', errorType: '400' });
  log(`empty Name reported: "${detail}"; its click's root failed with 400`);

  // 5. Phone width: no horizontal scroll.
  await page.setViewportSize({ width: 360, height: 780 });
  await page.waitForTimeout(100);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(scrollWidth <= 360, `at 360 px the page is ${scrollWidth} px wide (horizontal scroll)`);
  screenshots.push(join(SCREENSHOT_DIR, 'page-phone.png'));
  await page.screenshot({ path: screenshots.at(-1), fullPage: true });
  log('no horizontal scroll at 360 px');

  // 6. Keyboard: from a fresh load, Tab reaches Name, Email and the button in that order.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.reload({ waitUntil: 'load' });
  await page.locator('#conn.is-connected').waitFor();
  const order = [];
  const targets = { Name: name, Email: email, 'Create user': button };
  for (let press = 0; press < 30 && order.length < 3; press += 1) {
    await page.keyboard.press('Tab');
    for (const [label, locator] of Object.entries(targets)) {
      if (!order.includes(label) && (await locator.evaluate((el) => el === document.activeElement))) order.push(label);
    }
  }
  check(order.join(' > ') === 'Name > Email > Create user', `Tab reached ${order.join(' > ') || 'none of the fields'}`);
  const ring = await button.evaluate((el) => getComputedStyle(el).outlineStyle);
  check(ring !== 'none', 'the focused button shows no focus ring');
  log('Tab order: Name > Email > Create user');

  // 7. The fault panel, with the admin token pasted: its kinds are the gateway's; it switches
  // an error on a gateway route on, lists it, and switches everything off again.
  const card = page.locator('#faults-card');
  if (ADMIN_TOKEN) {
    await card.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {
      throw new Miss('the fault panel did not show (does /ui/config name fault_kinds?)');
    });
    await checkFaultPanel(page, card, config, screenshots);
  } else {
    check(!(await card.isVisible()), 'the fault panel shows: set ADMIN_TOKEN (the output of mint-token --admin) to test it');
    log('no ADMIN_TOKEN: the fault panel is not tested');
  }

  // Every traceparent the page sent is the id of a CLIENT span it exported, whose parent is a
  // root span it exported: no trace of the page's names a parent that is not in it.
  for (const traced of sent) {
    const span = await waitForSpan((s) => s.spanId === traced.spanId, `span for the traceparent of ${traced.method} ${traced.path}`);
    check(span.traceId === traced.traceId && span.kind === SPAN_KIND.client, `the span of ${traced.method} ${traced.path} is not the CLIENT span of its trace`);
    const parent = await waitForSpan((s) => s.spanId === span.parentSpanId, `parent of the span of ${traced.method} ${traced.path}`);
    check(!parent.parentSpanId && attribute(parent, 'frontend.action'), `the span of ${traced.method} ${traced.path} is not the child of an action's root`);
  }
  check(!JSON.stringify(exported).includes(createdEmail), 'an exported span holds the email typed into the form');
  log(`${sent.length} traced requests, each the CLIENT child of an action's root; ${exported.length} spans exported`);

  await page.waitForTimeout(300); // late console lines
  check(consoleMisses.length === 0, `console:\n  ${consoleMisses.join('\n  ')}`);
  await context.close();
  return { ok: true, created_email: createdEmail, trace_id: traceId, root_span_id: root.spanId, client_span_id: client.spanId, screenshots };
}

async function checkFaultPanel(page, card, config, screenshots) {
  const kinds = await page.getByLabel('Kind', { exact: true }).locator('option').evaluateAll((options) => options.map((o) => o.value));
  const served = config.fault_kinds.map((kind) => kind.kind);
  check(kinds.join() === served.join(), `the Kind field offers ${kinds.join(', ')}, not /ui/config's ${served.join(', ')}`);
  const adminToken = page.getByLabel('Admin token', { exact: true });
  await page.getByRole('button', { name: 'Switch on' }).click();
  check((await adminToken.getAttribute('aria-invalid')) === 'true', 'switching on without an admin token does not ask for one');
  const listed = later(page.waitForResponse(responseTo('GET', '/admin/faults')));
  await adminToken.fill(ADMIN_TOKEN);
  await adminToken.press('Enter');
  const list = await listed;
  check(list.status() === 200, `GET /admin/faults with the pasted admin token answered ${list.status()}`);
  check((await list.request().allHeaders()).authorization === `Bearer ${ADMIN_TOKEN}`, 'GET /admin/faults did not send the pasted admin token');

  const struck = new URL('/users?limit=1', base);
  const asReader = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
  await page.getByLabel('Kind', { exact: true }).selectOption('error');
  check(await page.getByLabel('Status', { exact: true }).isVisible(), 'an error fault shows no Status field');
  check(!(await page.getByLabel('Delay (ms)', { exact: true }).isVisible()), 'an error fault shows a Delay field');
  await page.getByLabel('Service', { exact: true }).selectOption('gateway');
  await page.getByLabel('Route (optional)', { exact: true }).fill('GET /users');
  await page.getByLabel('Status', { exact: true }).fill('503');
  await page.getByLabel('Lasts (s)', { exact: true }).fill('60');
  const putting = later(page.waitForRequest(isPath('PUT', '/admin/faults')));
  const put = later(page.waitForResponse(responseTo('PUT', '/admin/faults')));
  await page.getByRole('button', { name: 'Switch on' }).click();
  const switched = await put;
  check(switched.status() === 200, `PUT /admin/faults answered ${switched.status()}: ${await switched.text()}`);
  await card.locator('#faults-list li', { hasText: 'GET /users' }).waitFor({ timeout: 2000 }).catch(() => {
    throw new Miss('the switched-on fault is not listed');
  });
  const during = await fetch(struck, asReader);
  check(during.status === 503, `GET /users answered ${during.status} with its fault on`);
  const putContext = TRACEPARENT.exec((await (await putting).allHeaders()).traceparent ?? '');
  check(putContext, 'PUT /admin/faults sent no sampled traceparent');
  const switchRoot = await rootOf(putContext[1], 'the switch');
  checkRoot(switchRoot, { name: 'switch fault on', action: 'switch_fault_on', outcome: 'ok' });
  checkClient({ method: 'PUT', path: '/admin/faults', traceId: putContext[1], spanId: putContext[2] }, switchRoot, 200);
  screenshots.push(join(SCREENSHOT_DIR, 'page-faults.png'));
  await card.screenshot({ path: screenshots.at(-1) });

  const cleared = later(page.waitForResponse(responseTo('DELETE', '/admin/faults')));
  await page.getByRole('button', { name: 'Switch all off' }).click();
  check((await cleared).status() === 204, 'DELETE /admin/faults did not answer 204');
  await page.locator('#faults-empty').waitFor({ state: 'visible', timeout: 2000 }).catch(() => {
    throw new Miss('the list did not empty once every fault was switched off');
  });
  const after = await fetch(struck, asReader);
  check(after.status === 200, `GET /users answered ${after.status} with every fault off`);
  log('fault panel: pasted the admin token, switched an error on GET /users on, saw the 503, switched it off');
}

const watchdog = setTimeout(() => {
  console.error('page.test: gave up after 90 s');
  process.exit(1);
}, 90_000);

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = await run(browser);
  console.log(JSON.stringify(result));
  process.exitCode = 0;
} catch (error) {
  console.error(`page.test: FAILED: ${error instanceof Miss ? error.message : error?.stack ?? error}`);
  if (consoleMisses.length && !(error instanceof Miss && error.message.startsWith('console:'))) {
    console.error(`page.test: console too:\n  ${consoleMisses.join('\n  ')}`);
  }
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser?.close().catch(() => {});
}
