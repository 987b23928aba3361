// The users and the #user messages: loaded once, then kept up to date by the live feed, each
// live item with a link to its trace.

import { MissingToken } from './api.js';
import { h, timeEl } from './dom.js';

const LOADED = 20;
const MAX_ITEMS = 50; // per list

const initials = (name) => (String(name).trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join('') || '?').toUpperCase();
/** One of six avatar tones, stable per email. */
const tone = (text) => [...String(text)].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) >>> 0, 7) % 6;
const normalized = (email) => String(email).toLowerCase();

/** A list's elements: #<kind>-list, -count and -empty. */
function listElements(kind) {
  const [list, count, empty] = ['list', 'count', 'empty'].map((part) => document.getElementById(`${kind}-${part}`));
  return { list, count, empty, emptyText: empty.textContent };
}

export class Lists {
  #session;
  #tracer;
  #traceLink;
  #users = listElements('users');
  #messages = listElements('messages');
  #userItems = new Map(); // user id -> <li>
  #messageKeys = new Set();
  #mine = new Set(); // emails created in this tab
  #ready = false; // loaded: events before that wait in #early
  #early = [];

  /** `traceLink(traceId, what)` links a trace, or answers null. */
  constructor({ session, tracer, traceLink }) {
    this.#session = session;
    this.#tracer = tracer;
    this.#traceLink = traceLink;
  }

  /** Loads the latest users and messages, as the action `load lists`. */
  async load() {
    const action = this.#tracer.start('load_lists');
    const messages = new URLSearchParams({ channel: '#user', limit: String(LOADED) });
    const [users, loadedMessages] = await Promise.allSettled([
      this.#session.request(`/users?limit=${LOADED}`, { action }),
      this.#session.request(`/messages?${messages}`, { action }),
    ]);
    const loaded = [
      this.#fill(this.#users, 'users', users, (user) => this.#addUser(user)),
      this.#fill(this.#messages, 'messages', loadedMessages, (message) => this.#addMessage(message)),
    ];
    action.end(loaded.every(Boolean) ? 'ok' : 'error', 'not_loaded');
    this.#ready = true;
    this.#early.splice(0).forEach((event) => this.#show(event));
  }

  /** An event of the live feed. */
  receive(event) {
    if (this.#ready) this.#show(event);
    else this.#early.push(event);
  }

  /** Marks the user with `email` as created in this tab, now or when it arrives. */
  claim(email) {
    this.#mine.add(normalized(email));
    for (const li of this.#userItems.values()) if (normalized(li.dataset.email) === normalized(email)) markMine(li);
  }

  #fill(elements, what, settled, add) {
    const result = settled.value;
    if (result?.ok && Array.isArray(result.data)) {
      elements.empty.textContent = elements.emptyText;
      result.data.forEach(add);
      return true;
    }
    elements.empty.textContent = settled.reason instanceof MissingToken
      ? `Paste a bearer token to see the ${what}.`
      : `The ${what} could not be loaded; new ones still appear here live.`;
    return false;
  }

  #show(event) {
    const traceId = event.trace_id;
    if (event.type === 'user.created' && event.user) this.#addUser(event.user, { traceId, live: true });
    else if (event.type === 'message.created' && event.message?.channel === '#user') this.#addMessage(event.message, { traceId, live: true });
  }

  /** The link to the trace of a live item: the page's trace, when the page made it. */
  #link(traceId, what) {
    return traceId ? this.#traceLink(this.#tracer.pageTrace(traceId), what) : null;
  }

  /** Lists a user: `live` ones (from the feed) go on top with their trace link. */
  #addUser(user, { traceId, live = false } = {}) {
    if (!user || user.id == null) return;
    const what = `the creation of ${user.name}`;
    const existing = this.#userItems.get(user.id);
    if (existing) {
      // Already listed at load: the event only brings its trace link.
      const link = !existing.querySelector('.trace-link') && this.#link(traceId, what);
      if (link) existing.querySelector('.item-meta').append(link);
      return;
    }
    const li = h('li', { class: live ? 'item is-new' : 'item', dataset: { email: user.email, userId: String(user.id) } },
      h('span', { class: `avatar tone-${tone(user.email)}`, 'aria-hidden': 'true', text: initials(user.name) }),
      h('div', { class: 'item-main' },
        h('p', { class: 'item-title' }, h('span', { class: 'name', text: user.name })),
        h('p', { class: 'item-sub', text: user.email })),
      h('div', { class: 'item-meta' }, timeEl(user.created_at), this.#link(traceId, what)));
    if (this.#mine.has(normalized(user.email))) markMine(li);
    this.#userItems.set(user.id, li);
    place(this.#users, li, live);
    for (const [id, item] of this.#userItems) if (!item.isConnected) this.#userItems.delete(id);
  }

  #addMessage(message, { traceId, live = false } = {}) {
    if (!message || typeof message.message !== 'string') return;
    const key = `${message.channel}\n${message.message}\n${message.created_at}`;
    if (this.#messageKeys.has(key)) return;
    this.#messageKeys.add(key);
    const li = h('li', { class: live ? 'item is-new' : 'item', dataset: { channel: message.channel } },
      h('span', { class: 'avatar avatar-bot', 'aria-hidden': 'true', text: '#' }),
      h('div', { class: 'item-main' }, h('p', { class: 'item-text', text: message.message })),
      h('div', { class: 'item-meta' }, timeEl(message.created_at), this.#link(traceId, 'this message')));
    place(this.#messages, li, live);
  }
}

/** Live items go on top, loaded ones below; the oldest beyond MAX_ITEMS go. */
function place({ list, count, empty }, li, live) {
  if (live) list.prepend(li);
  else list.append(li);
  while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
  count.textContent = String(list.children.length);
  empty.hidden = list.children.length > 0;
}

function markMine(li) {
  const title = li.querySelector('.item-title');
  if (!title.querySelector('.badge')) title.append(h('span', { class: 'badge', text: 'yours' }));
}
