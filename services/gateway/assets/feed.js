// The live feed: one WebSocket to /ws/events, authenticated by its subprotocol (a browser sets
// no header on a WebSocket), reconnected with backoff; each event handed on once, however often
// a reconnect brings it.

import { MissingToken } from './api.js';
import { fromPerformance } from './tracing.js';

// The gateway answers with `feed`; the token rides as a second offer, `bearer.<token>`.
const PROTOCOL = 'feed';
const TYPES = 'user.created,message.created';
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
// A connection that lasted this long resets the backoff.
const STABLE_AFTER_MS = 5000;
const FAILURES_BEFORE_OFFLINE = 5;
const SEEN_EVENTS = 1000;
const LABELS = { connecting: 'Connecting…', connected: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

export class Feed {
  #token;
  #listeners = [];
  #indicator = document.getElementById('conn');
  #label = document.getElementById('conn-label');
  #socket = null;
  #delay = FIRST_DELAY_MS;
  #timer = 0;
  #openedAt = 0;
  #failures = 0;
  #attempt = 0; // the latest connect(): an older one still waiting for its token gives way
  #seen = new Set();

  /** `token` answers the bearer token to connect with. */
  constructor({ token }) {
    this.#token = token;
  }

  /** `listener(event, at)` gets each event once, `at` on the browser's clock (epoch ms). */
  onEvent(listener) {
    this.#listeners.push(listener);
  }

  start() {
    addEventListener('online', () => {
      if (this.#socket && this.#socket.readyState <= WebSocket.OPEN) return;
      this.#delay = FIRST_DELAY_MS;
      this.connect();
    });
    addEventListener('offline', () => this.#show('offline', 'This device is offline'));
    this.connect();
  }

  /** Connects anew, closing the connection there is (a new token was pasted). */
  async connect() {
    clearTimeout(this.#timer);
    const attempt = ++this.#attempt;
    const previous = this.#socket;
    this.#socket = null;
    previous?.close(1000);
    if (!this.#failures) this.#show('connecting');
    let token;
    try {
      token = await this.#token();
    } catch (error) {
      if (attempt !== this.#attempt) return;
      if (error instanceof MissingToken) this.#show('offline', 'Paste a bearer token to see events live');
      else this.#retry('no token');
      return;
    }
    if (attempt !== this.#attempt) return;
    const url = new URL('/ws/events', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('types', TYPES);
    const socket = new WebSocket(url, [PROTOCOL, `bearer.${token}`]);
    this.#socket = socket;
    socket.addEventListener('open', () => {
      this.#openedAt = Date.now();
      this.#show('connected');
    });
    socket.addEventListener('message', (message) => this.#receive(message));
    socket.addEventListener('close', (close) => {
      if (this.#socket !== socket) return; // replaced
      if (this.#openedAt && Date.now() - this.#openedAt >= STABLE_AFTER_MS) {
        this.#delay = FIRST_DELAY_MS;
        this.#failures = 0;
      }
      this.#openedAt = 0;
      this.#retry(`closed (${close.code})`);
    });
  }

  #receive(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return; // not a frame of ours
    }
    if (!event || typeof event.id !== 'string' || this.#seen.has(event.id)) return;
    this.#seen.add(event.id);
    if (this.#seen.size > SEEN_EVENTS) this.#seen.delete(this.#seen.values().next().value);
    const at = fromPerformance(message.timeStamp);
    for (const listener of this.#listeners) listener(event, at);
  }

  /** Exponential backoff, 0.5 s doubling to 15 s, with a little jitter. */
  #retry(why) {
    this.#failures += 1;
    if (!navigator.onLine) return this.#show('offline', 'This device is offline; the feed comes back with the network');
    const delay = Math.round(Math.min(this.#delay * (0.85 + Math.random() * 0.3), MAX_DELAY_MS));
    this.#delay = Math.min(this.#delay * 2, MAX_DELAY_MS);
    const detail = `${why[0].toUpperCase()}${why.slice(1)}; next try in ${Math.ceil(delay / 1000)} s`;
    this.#show(this.#failures >= FAILURES_BEFORE_OFFLINE ? 'offline' : 'reconnecting', detail);
    this.#timer = setTimeout(() => this.connect(), delay);
  }

  #show(status, detail) {
    this.#indicator.className = `conn is-${status}`;
    this.#label.textContent = LABELS[status];
    this.#indicator.title = detail ?? (status === 'connected' ? 'Receiving events as they happen' : '');
  }
}
