// Every process's health, from the gateway's /health, refreshed every 5 s; a change is
// announced to screen readers. Not a person's action: it is not traced by the page.

import { request } from './api.js';
import { h, timeFormat } from './dom.js';

const EVERY_MS = 5000;
const TIMEOUT_MS = 4000;
const STATES = { up: 'Up', down: 'Down', unknown: 'Unknown' };

export class Health {
  #list = document.getElementById('health-list');
  #summary = document.getElementById('health-summary');
  #updated = document.getElementById('health-updated');
  #announce = document.getElementById('health-announce');
  #up = new Map(); // process -> true, false or null (unknown)

  start() {
    this.#refresh();
  }

  async #refresh() {
    const started = performance.now();
    let result = null;
    try {
      result = await request('/health', { signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch {
      // unreachable: reported below
    }
    this.#render(result ? this.#rows(result, Math.round(performance.now() - started)) : this.#unreachable());
    setTimeout(() => this.#refresh(), EVERY_MS);
  }

  /** The gateway is up if it answered at all; each process as it reports (200 or 503). */
  #rows(result, time) {
    const report = [200, 503].includes(result.status) && result.data && typeof result.data === 'object' ? result.data : null;
    const rows = [{ name: 'gateway', up: true, time, error: report ? null : `answered ${result.status} to /health` }];
    if (!report) return [...rows, ...this.#unknownOthers()];
    for (const [name, check] of Object.entries(report)) {
      const up = Boolean(check) && !check.error && 'response' in check;
      rows.push({ name, up, time: check?.time, error: check?.error ?? (up ? null : 'no answer') });
    }
    return rows;
  }

  #unreachable() {
    return [{ name: 'gateway', up: false, error: 'cannot be reached' }, ...this.#unknownOthers()];
  }

  #unknownOthers() {
    return [...this.#up.keys()].filter((name) => name !== 'gateway').map((name) => ({ name, up: null }));
  }

  #render(rows) {
    const changes = [];
    for (const row of rows) {
      const li = this.#list.querySelector(`li[data-process="${CSS.escape(row.name)}"]`) ?? this.#addRow(row.name);
      const status = row.up === null ? 'unknown' : row.up ? 'up' : 'down';
      li.className = `health-row is-${status}`;
      li.querySelector('.state').textContent = STATES[status];
      li.querySelector('.ms').textContent = Number.isFinite(row.time) ? `${row.time} ms` : '';
      li.querySelector('.error').textContent = row.error ?? '';
      const before = this.#up.get(row.name);
      if (before !== undefined && before !== row.up && row.up !== null) {
        changes.push(row.up ? `${row.name} is up again` : `${row.name} is down${row.error ? `: ${row.error}` : ''}`);
      }
      this.#up.set(row.name, row.up);
    }
    const down = rows.filter((row) => row.up === false).length;
    this.#summary.textContent = down ? `${down} down` : 'All up';
    this.#summary.className = `pill ${down ? 'is-bad' : 'is-good'}`;
    this.#updated.textContent = `Updated ${timeFormat.format(new Date())} · refreshed every 5 s`;
    if (changes.length) this.#announce.textContent = changes.join('. ');
  }

  #addRow(name) {
    const li = h('li', { dataset: { process: name } },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'process', text: name }),
      h('span', { class: 'state' }),
      h('span', { class: 'ms' }),
      h('p', { class: 'error' }));
    this.#list.append(li);
    return li;
  }
}
