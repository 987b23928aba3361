// Drives the gateway's page in Debian's headless Chromium.
//
//   GATEWAY_URL=http://127.0.0.1:8080 SCREENSHOT_DIR=/tmp/shots node page.test.mjs
//
// A gateway in development mode hands the page its token; one with a real key makes the page
// ask for a "Bearer token": then set BEARER_TOKEN. CHROMIUM overrides /usr/bin/chromium.
//
// In development mode it also switches a fault on and off with the page's fault panel.
//
// On success prints one JSON line on stdout:
//   {"ok":true,"created_email":"...","trace_id":"<32 hex>","screenshots":[...]}
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
const HEX32 = /^[0-9a-f]{32}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const LIVE_WITHIN_MS = 2000;

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

// ---------- Console and traceparent watch, for the whole run

const consoleMisses = [];
const expectedStatuses = []; // {url, status}: network errors this run provokes on purpose
const NETWORK_LINE = /^Failed to load resource: the server responded with a status of (\d{3})/;

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
  // Every request the page makes itself sends its own sampled traceparent.
  const traceIds = new Set();
  page.on('request', (request) => {
    if (!['fetch', 'xhr'].includes(request.resourceType())) return;
    const header = request.headers().traceparent ?? '';
    const match = TRACEPARENT.exec(header);
    if (!match || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) {
      consoleMisses.push(`${request.method()} ${request.url()} sent no valid sampled traceparent (${header || 'none'})`);
    } else if (traceIds.has(match[1])) {
      consoleMisses.push(`${request.method()} ${request.url()} reused trace id ${match[1]}`);
    }
    traceIds.add(match?.[1]);
  });
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
  const echoed = (await response.allHeaders())['x-trace-id'];
  check(echoed === traceId, `the list's trace id ${traceId} is not the x-trace-id ${echoed} of POST /user`);
  const sent = TRACEPARENT.exec((await request.allHeaders()).traceparent ?? '');
  check(sent, 'POST /user sent no sampled traceparent');
  check(sent[1] === traceId, `the list's trace id ${traceId} is not the one the page sent (${sent[1]})`);
  const href = await link.getAttribute('href');
  check(href?.endsWith(`/traces/${traceId}`), `the trace link goes to ${href}`);
  check((await link.getAttribute('target')) === '_blank' && /noopener/.test((await link.getAttribute('rel')) ?? ''),
    'the trace link does not open in a new tab with rel=noopener');
  check((await name.inputValue()) === '' && (await email.inputValue()) === '', 'the form was not cleared after the 201');
  await page.locator('#form-msg').getByText(createdEmail).waitFor({ timeout: 1000 }).catch(() => {
    throw new Miss('no success line names the created user');
  });
  log(`created ${createdEmail}: listed live after ${arrivedMs} ms, trace ${traceId}`);
  screenshots.push(join(SCREENSHOT_DIR, 'page-desktop.png'));
  await page.screenshot({ path: screenshots.at(-1), fullPage: true });

  // 3. The taken email is reported next to Email before submitting.
  const availability = later(page.waitForResponse(responseTo('GET', '/users/availability')));
  await email.fill(createdEmail);
  const checked = await availability;
  check(checked.status() === 200, `GET /users/availability answered ${checked.status()}`);
  await waitForDescription(email, /already taken/i, 2000, 'the taken email');
  check((await email.getAttribute('aria-invalid')) === 'true', 'the taken email is not marked aria-invalid');
  log('taken email reported before submitting');

  // 4. An empty Name: the server's detail by the Name field.
  await name.fill('');
  await email.fill(`page-${unique()}@example.com`);
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
  log(`empty Name reported: "${detail}"`);

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

  // 7. Development mode: the fault panel switches an error on a gateway route on, lists it, and
  // switches everything off again.
  if (!BEARER_TOKEN) {
    const card = page.locator('#faults-card');
    await card.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {
      throw new Miss('the fault panel did not show in development mode');
    });
    const struck = new URL('/users?limit=1', base);
    await page.getByLabel('Kind', { exact: true }).selectOption('error');
    check(await page.getByLabel('Status', { exact: true }).isVisible(), 'an error fault shows no Status field');
    check(!(await page.getByLabel('Delay (ms)', { exact: true }).isVisible()), 'an error fault shows a Delay field');
    await page.getByLabel('Service', { exact: true }).selectOption('gateway');
    await page.getByLabel('Route (optional)', { exact: true }).fill('GET /users');
    await page.getByLabel('Status', { exact: true }).fill('503');
    await page.getByLabel('Lasts (s)', { exact: true }).fill('60');
    const put = later(page.waitForResponse(responseTo('PUT', '/admin/faults')));
    await page.getByRole('button', { name: 'Switch on' }).click();
    const switched = await put;
    check(switched.status() === 200, `PUT /admin/faults answered ${switched.status()}: ${await switched.text()}`);
    await card.locator('#faults-list li', { hasText: 'GET /users' }).waitFor({ timeout: 2000 }).catch(() => {
      throw new Miss('the switched-on fault is not listed');
    });
    const during = await fetch(struck);
    check(during.status === 503, `GET /users answered ${during.status} with its fault on`);
    screenshots.push(join(SCREENSHOT_DIR, 'page-faults.png'));
    await card.screenshot({ path: screenshots.at(-1) });
    const cleared = later(page.waitForResponse(responseTo('DELETE', '/admin/faults')));
    await page.getByRole('button', { name: 'Switch all off' }).click();
    check((await cleared).status() === 204, 'DELETE /admin/faults did not answer 204');
    await page.locator('#faults-empty').waitFor({ state: 'visible', timeout: 2000 }).catch(() => {
      throw new Miss('the list did not empty once every fault was switched off');
    });
    const after = await fetch(struck);
    check(after.status === 200, `GET /users answered ${after.status} with every fault off`);
    log('fault panel: switched an error on GET /users on, saw the 503, switched it off');
  }

  await page.waitForTimeout(300); // late console lines
  check(consoleMisses.length === 0, `console:\n  ${consoleMisses.join('\n  ')}`);
  await context.close();
  return { ok: true, created_email: createdEmail, trace_id: traceId, screenshots };
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
