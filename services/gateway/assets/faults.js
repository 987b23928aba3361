// The fault panel: with an admin token pasted (the output of `mint-token --admin`, kept in this
// page's memory only, never stored), it lists the faults in force and switches them on and off
// through /admin/faults. The kinds, and the fields each one takes, come from /ui/config.

import { request } from './api.js';
import { clearErrorOnInput, fieldDetail, h, notice, setFieldMessage, timeFormat } from './dom.js';

const REFRESH_MS = 5000;
// Every kind takes these; the other fields only the kinds whose `fields` name them.
const COMMON_FIELDS = ['probability', 'ttl_seconds'];

/** One fault in force, in a line: "error · gateway GET /users · 503 · 50 %". */
function describe(fault) {
  const where = `${fault.services.join(', ')}${fault.route ? ` ${fault.route}` : ''}`;
  const what = fault.delay_ms ? `+${fault.delay_ms} ms` : fault.status ? String(fault.status) : '';
  const share = fault.probability < 1 ? ` · ${Math.round(fault.probability * 100)} %` : '';
  return `${fault.kind} · ${where}${what ? ` · ${what}` : ''}${share}`;
}

export class Faults {
  #tracer;
  #traceLink;
  #kinds; // kind -> {kind, description, fields, services}
  #card = document.getElementById('faults-card');
  #list = document.getElementById('faults-list');
  #count = document.getElementById('faults-count');
  #empty = document.getElementById('faults-empty');
  #form = document.getElementById('fault-form');
  #kind = document.getElementById('fault-kind');
  #token = document.getElementById('admin-token');
  #submit = document.getElementById('fault-submit');
  #message = document.getElementById('fault-msg');
  // The form's fields by the request's field names, from their data-field wrappers.
  #wrappers = Object.fromEntries([...this.#form.querySelectorAll('[data-field]')].map((el) => [el.dataset.field, el]));
  #inputs = Object.fromEntries(Object.entries(this.#wrappers).map(([field, el]) => [field, el.querySelector('input, select')]));
  #inForce = [];
  #timer = 0;

  /** `kinds` is /ui/config's `fault_kinds`; without any, the panel stays hidden. */
  constructor({ tracer, traceLink, kinds }) {
    this.#tracer = tracer;
    this.#traceLink = traceLink;
    this.#kinds = new Map((Array.isArray(kinds) ? kinds : [])
      .filter((kind) => typeof kind?.kind === 'string')
      .map((kind) => [kind.kind, {
        kind: kind.kind,
        description: kind.description || kind.kind,
        // Only the fields this form has: a newer gateway's field stays at its default.
        fields: (Array.isArray(kind.fields) ? kind.fields : []).filter((field) => Object.hasOwn(this.#inputs, field)),
        services: Array.isArray(kind.services) ? kind.services : [],
      }]));
  }

  start() {
    if (!this.#kinds.size) return;
    this.#kind.replaceChildren(...[...this.#kinds.values()].map((kind) => h('option', { value: kind.kind, text: kind.description })));
    this.#showFields();
    this.#render();
    this.#kind.addEventListener('change', () => this.#showFields());
    clearErrorOnInput(this.#token);
    // Enter in the token's own form changes it, and submits nothing.
    this.#token.form.addEventListener('submit', (submit) => submit.preventDefault());
    this.#token.addEventListener('change', () => {
      this.#inForce = [];
      this.#render();
      this.#load();
    });
    this.#form.addEventListener('submit', (submit) => {
      submit.preventDefault();
      this.#switchOn();
    });
    document.getElementById('faults-clear').addEventListener('click', () => this.#switchOff());
    this.#card.hidden = false;
  }

  #adminToken() {
    return this.#token.value.trim().replace(/^Bearer\s+/i, '');
  }

  /** Reads the set in force, then again every 5 s while the token is accepted. */
  async #load() {
    clearTimeout(this.#timer);
    const token = this.#adminToken();
    if (!token) return;
    try {
      const result = await request('/admin/faults', { token });
      if (!result.ok || !Array.isArray(result.data)) return this.#refused(result);
      this.#inForce = result.data;
      this.#render();
    } catch {
      // offline for now: the next refresh tries again
    }
    this.#timer = setTimeout(() => this.#load(), REFRESH_MS);
  }

  async #switchOn() {
    const token = this.#adminToken();
    if (!token) return this.#askForToken();
    for (const input of Object.values(this.#inputs)) setFieldMessage(input, '');
    const asked = this.#asked();
    // PUT replaces the whole set: the faults in force go with the new one, last.
    const set = [...this.#inForce.map((fault) => this.#askedAgain(fault)), asked];
    const action = this.#tracer.start('switch_fault_on');
    this.#submit.setAttribute('aria-busy', 'true');
    try {
      const result = await request('/admin/faults', { method: 'PUT', body: set, token, action });
      action.endWithStatus(result.status);
      if (result.ok && Array.isArray(result.data)) {
        this.#switched(result.data, `Switched on: ${asked.kind}.`, action);
      } else if (!this.#showFieldErrors(result, set.length - 1)) {
        this.#refused(result);
      }
    } catch (error) {
      action.end('error', error.name);
      this.#say('error', 'The gateway could not be reached.');
    } finally {
      this.#submit.removeAttribute('aria-busy');
    }
  }

  async #switchOff() {
    const token = this.#adminToken();
    if (!token) return this.#askForToken();
    const action = this.#tracer.start('switch_faults_off');
    try {
      const result = await request('/admin/faults', { method: 'DELETE', token, action });
      action.endWithStatus(result.status);
      if (result.ok) this.#switched([], 'Every fault is off.', action);
      else this.#refused(result);
    } catch (error) {
      action.end('error', error.name);
      this.#say('error', 'The gateway could not be reached.');
    }
  }

  #switched(inForce, text, action) {
    this.#inForce = inForce;
    this.#render();
    this.#say('success', text, this.#traceLink(action.traceId, 'this switch'));
  }

  /** The fault the form asks for: its kind's fields only. */
  #asked() {
    const kind = this.#kinds.get(this.#kind.value);
    const asked = { kind: kind.kind };
    for (const field of [...kind.fields, ...COMMON_FIELDS]) {
      const input = this.#inputs[field];
      const value = input.value.trim();
      if (input.type === 'number') asked[field] = Number(value);
      else if (value) asked[field] = value; // an empty route: all the service's routes
    }
    return asked;
  }

  /** A fault in force, asked for again with the time it has left. */
  #askedAgain(fault) {
    const asked = {
      kind: fault.kind,
      probability: fault.probability,
      ttl_seconds: Math.max(1, Math.round((Date.parse(fault.expires_at) - Date.now()) / 1000)),
    };
    for (const field of this.#kinds.get(fault.kind)?.fields ?? []) {
      const value = field === 'service' ? fault.services[0] : fault[field];
      if (value != null) asked[field] = value;
    }
    return asked;
  }

  /** The new fault's errors by its fields (it is item `index` of the set); false if none. */
  #showFieldErrors(result, index) {
    let named = false;
    for (const [field, input] of Object.entries(this.#inputs)) {
      const detail = fieldDetail(result.data, `#/${index}/${field}`);
      if (detail) {
        setFieldMessage(input, detail, 'error');
        named = true;
      }
    }
    if (named) this.#say('error', 'The fault was not switched on: see the fields.');
    return named;
  }

  /** A refusal that is no field's: the token's, or the gateway's. */
  #refused(result) {
    if (result.status === 401) return this.#askForToken('This token is not accepted.');
    if (result.status === 403) return this.#askForToken('This token has no admin role: mint it with --admin.');
    if (result.status === 404) return this.#say('error', 'This gateway has no fault switch: FAULTS_ENABLED is off.');
    this.#say('error', result.data?.detail ?? `The gateway answered ${result.status}.`);
  }

  #askForToken(text = 'Paste an admin token: the output of mint-token --admin.') {
    setFieldMessage(this.#token, text, 'error');
    this.#token.focus();
  }

  #say(kind, text, ...more) {
    this.#message.replaceChildren(notice(kind, h('p', { text }), ...more));
  }

  #showFields() {
    const kind = this.#kinds.get(this.#kind.value);
    for (const [field, wrapper] of Object.entries(this.#wrappers)) {
      wrapper.hidden = !COMMON_FIELDS.includes(field) && !kind.fields.includes(field);
    }
    this.#inputs.service?.replaceChildren(...kind.services.map((service) => h('option', { text: service })));
  }

  #render() {
    this.#list.replaceChildren(...this.#inForce.map((fault) => h('li', { class: 'item fault-item', dataset: { kind: fault.kind } },
      h('span', { class: 'avatar avatar-bot', 'aria-hidden': 'true', text: '!' }),
      h('div', { class: 'item-main' },
        h('p', { class: 'item-title', text: describe(fault) }),
        h('p', { class: 'item-sub', text: `ends ${timeFormat.format(new Date(fault.expires_at))}` })))));
    this.#count.textContent = String(this.#inForce.length);
    this.#empty.textContent = this.#adminToken() ? 'No fault is switched on.' : 'Paste an admin token to see the faults in force.';
    this.#empty.hidden = this.#inForce.length > 0;
  }
}
