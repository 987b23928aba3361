// The page's client of the gateway's API: JSON in, JSON or problem details out, the bearer
// token on every call of user data, and for a call an action makes, the action's CLIENT span,
// whose id goes out in the traceparent.

import { HEX32 } from './dom.js';
import { fromPerformance } from './tracing.js';

const ACCEPT = 'application/json, application/problem+json';
// A development token is renewed this long before it expires.
const RENEW_BEFORE_MS = 60_000;

/** Outside development mode, no bearer token has been pasted yet. */
export class MissingToken extends Error {
  name = 'MissingToken';
}

/** In development mode, the gateway gave the page no token: `result` is its answer. */
export class TokenRefused extends Error {
  name = 'TokenRefused';

  constructor(result) {
    super(`POST /dev/token answered ${result.status}`);
    this.result = result;
  }
}

/**
 * One call. `token` goes as the bearer token; `action` traces it. Answers {ok, status, data,
 * headers}, `data` being the parsed JSON (or problem details) body; rejects as fetch does.
 */
export async function request(path, { method = 'GET', body, token, action, signal } = {}) {
  const url = new URL(path, location.href);
  const headers = { accept: ACCEPT };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  // The path only: a query may hold an email.
  const span = action?.request(method, url.pathname);
  if (span?.traceparent) headers.traceparent = span.traceparent;
  const sentAt = performance.now();
  try {
    const response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
    const type = response.headers.get('content-type') ?? '';
    const data = type.includes('json') ? await response.json().catch(() => null) : null;
    if (span) {
      recordAnswer(span, response, performance.getEntriesByName(url.href, 'resource').findLast((entry) => entry.startTime >= sentAt));
      const echoed = response.headers.get('x-trace-id');
      if (HEX32.test(echoed ?? '')) action.joined(echoed);
    }
    return { ok: response.ok, status: response.status, data, headers: response.headers };
  } catch (error) {
    span?.fail(signal?.aborted && typeof signal.reason === 'string' ? signal.reason : error.name);
    throw error;
  } finally {
    span?.finish();
  }
}

/**
 * The answer on its CLIENT span: the status (an error from 400 on, as HTTP client spans have
 * it) and, from Resource Timing, when the request left and when its answer began, which the
 * gateway's clock cannot say.
 */
function recordAnswer(span, response, timing) {
  span.set({ 'http.response.status_code': response.status });
  if (response.status >= 400) span.fail(String(response.status));
  if (!timing?.requestStart) return;
  span.addEvent('request sent', fromPerformance(timing.requestStart));
  span.addEvent('response started', fromPerformance(timing.responseStart));
  span.set({ 'http.response.body.size': timing.encodedBodySize });
}

/**
 * The person's credentials: in development mode a token the gateway gives the page (no admin
 * role), otherwise the bearer token pasted into the form.
 */
export class Session {
  #development;
  #pasted = '';
  #developmentToken = null; // {value, expiresAt}
  #developmentTokenRequest = null;

  constructor({ development }) {
    this.#development = development;
  }

  get development() {
    return this.#development;
  }

  usePastedToken(text) {
    this.#pasted = text.trim().replace(/^Bearer\s+/i, '');
  }

  /** The bearer token; rejects with MissingToken or TokenRefused. */
  async token(action) {
    if (!this.#development) {
      if (!this.#pasted) throw new MissingToken('no bearer token pasted');
      return this.#pasted;
    }
    if (!this.#developmentToken || Date.now() > this.#developmentToken.expiresAt - RENEW_BEFORE_MS) {
      // One request at a time: the start-up's and a quick first click's share it.
      this.#developmentTokenRequest ??= this.#fetchDevelopmentToken(action).finally(() => {
        this.#developmentTokenRequest = null;
      });
      this.#developmentToken = await this.#developmentTokenRequest;
    }
    return this.#developmentToken.value;
  }

  async #fetchDevelopmentToken(action) {
    const result = await request('/dev/token', { method: 'POST', action });
    if (!result.ok || typeof result.data?.token !== 'string') throw new TokenRefused(result);
    const seconds = Number(result.data.expires_in) || 3600;
    return { value: result.data.token, expiresAt: Date.now() + seconds * 1000 };
  }

  /** A call with the person's token; a development token refused (401) is renewed once. */
  async request(path, options = {}) {
    const result = await request(path, { ...options, token: await this.token(options.action) });
    if (result.status !== 401 || !this.#development) return result;
    this.#developmentToken = null; // expired, or signed by a gateway since restarted
    return request(path, { ...options, token: await this.token(options.action) });
  }
}
