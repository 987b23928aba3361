// The form that creates a user: the email checked as it is typed, the gateway's problems shown
// by their fields, and how long the new user took to arrive on the live feed.

import { MissingToken, TokenRefused } from './api.js';
import { clearErrorOnInput, fieldDetail, h, notice, setFieldMessage } from './dom.js';

const CHECK_DEBOUNCE_MS = 300;
const CHECK_TIMEOUT_MS = 3000;
// Only a value that can be an email is checked while typing (no "invalid" shouted at "ada@").
const LOOKS_LIKE_EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@.]+$/;
// The pasted token stays in this tab only.
const TOKEN_KEY = 'bearer-token';

/** "slow down" -> "slow down." (the capital comes from the style). */
const sentence = (text) => (/[.!?]$/.test(text) ? text : `${text}.`);

export class UserForm {
  #session;
  #tracer;
  #lists;
  #traceLink;
  #form = document.getElementById('user-form');
  #name = document.getElementById('name');
  #email = document.getElementById('email');
  #token = document.getElementById('token');
  #submit = document.getElementById('submit');
  #message = document.getElementById('form-msg');
  #fields = { '/name': this.#name, '/email': this.#email }; // by the problem's pointer
  #check = { timer: 0, controller: null, value: '' };
  #busy = false;

  constructor({ session, tracer, lists, traceLink }) {
    this.#session = session;
    this.#tracer = tracer;
    this.#lists = lists;
    this.#traceLink = traceLink;
  }

  /** Wires the form; outside development mode, `onTokenChange` runs when a token is pasted. */
  start({ onTokenChange }) {
    this.#form.addEventListener('submit', (submit) => {
      submit.preventDefault();
      this.#create();
    });
    this.#email.addEventListener('input', () => this.#emailTyped());
    this.#email.addEventListener('change', () => {
      const value = this.#email.value.trim();
      if (value && value !== this.#check.value && !this.#check.controller) {
        this.#cancelCheck();
        this.#checkEmail(value);
      }
    });
    for (const input of [this.#name, this.#token]) clearErrorOnInput(input);
    if (this.#session.development) return;
    document.getElementById('token-field').hidden = false;
    this.#token.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
    this.#session.usePastedToken(this.#token.value);
    this.#token.addEventListener('input', () => {
      sessionStorage.setItem(TOKEN_KEY, this.#token.value.trim());
      this.#session.usePastedToken(this.#token.value);
    });
    this.#token.addEventListener('change', onTokenChange);
  }

  say(kind, ...content) {
    this.#message.replaceChildren(content.length ? notice(kind, ...content) : '');
  }

  async #create() {
    if (this.#busy) return;
    this.#clearErrors();
    const user = { name: this.#name.value.trim(), email: this.#email.value.trim() };
    this.#setBusy(true);
    this.#lists.claim(user.email);
    const action = this.#tracer.start('create_user');
    try {
      const result = await this.#session.request('/user', { method: 'POST', body: user, action });
      if (result.status === 201 && result.data) {
        this.#created(result.data, action);
      } else {
        action.endWithStatus(result.status);
        this.#showProblem(result, action.traceId);
      }
    } catch (error) {
      action.end('error', error.name);
      if (error instanceof MissingToken) this.#askForToken('Paste a bearer token to create users.');
      else if (error instanceof TokenRefused) this.#showProblem(error.result, action.traceId);
      else this.say('error', h('p', { text: 'The gateway cannot be reached. Check that it runs and try again.' }));
    } finally {
      this.#setBusy(false);
    }
  }

  /** The 201: the form empties, and the action ends when the user arrives on the live feed. */
  #created(user, action) {
    this.#lists.claim(user.email);
    this.#name.value = ''; // not form.reset(): the bearer token stays
    this.#email.value = '';
    this.#cancelCheck();
    for (const input of [this.#name, this.#email]) setFieldMessage(input, '');
    const arrival = h('p', { class: 'arrival muted', text: 'Waiting for it on the live feed…' });
    this.say('success',
      h('p', {}, 'Created ', h('strong', { text: user.name }), ` (${user.email}), id ${user.id}.`),
      arrival,
      this.#traceLink(action.traceId, `the creation of ${user.name}`));
    action.endOnFrame('user.created').then((at) => {
      arrival.textContent = at == null
        ? 'It has not arrived on the live feed within 10 s.'
        : `Arrived on the live feed ${Math.max(0, Math.round(at - action.startedAt))} ms after the click.`;
    });
  }

  #setBusy(busy) {
    this.#busy = busy;
    for (const attribute of ['aria-busy', 'aria-disabled']) {
      if (busy) this.#submit.setAttribute(attribute, 'true');
      else this.#submit.removeAttribute(attribute);
    }
  }

  #clearErrors() {
    for (const input of [this.#name, this.#email, this.#token]) {
      if (input.getAttribute('aria-invalid') === 'true') setFieldMessage(input, '');
    }
    this.say();
  }

  #askForToken(text) {
    setFieldMessage(this.#token, text, 'error');
    this.#token.focus();
  }

  /** A problem: field errors by their fields, anything else as the form's message. */
  #showProblem(result, traceId) {
    const problem = result.data && typeof result.data === 'object' ? result.data : {};
    const detail = sentence(problem.detail || problem.title || `The gateway answered ${result.status}`);
    const lines = [];
    let firstField = null;
    for (const error of Array.isArray(problem.errors) ? problem.errors : []) {
      const input = this.#fields[String(error?.pointer ?? '').replace(/^#/, '')];
      if (input) {
        setFieldMessage(input, error.detail, 'error');
        firstField ??= input;
      } else if (error?.detail) {
        lines.push(`${error.pointer ?? 'request'}: ${error.detail}`);
      }
    }
    if (result.status === 409) {
      setFieldMessage(this.#email, 'is already taken', 'error');
      firstField = this.#email;
    }
    if (result.status === 401 && !this.#session.development) {
      setFieldMessage(this.#token, 'This token is not accepted.', 'error');
      firstField = this.#token;
    }
    let retry = '';
    if (result.status === 429) {
      const seconds = Number(result.headers?.get('retry-after'));
      retry = Number.isFinite(seconds) && seconds > 0 ? ` Try again in ${seconds} s.` : ' Try again shortly.';
    }
    this.say('error',
      h('p', { text: `${detail}${retry}` }),
      lines.length ? h('ul', {}, lines.map((line) => h('li', { text: line }))) : null,
      this.#traceLink(traceId, 'this request'));
    firstField?.focus();
  }

  // The email is checked as it is typed: debounced, the stale check cancelled; and any value
  // once the field is left.
  #emailTyped() {
    this.#cancelCheck();
    this.#check.value = '';
    setFieldMessage(this.#email, '');
    const value = this.#email.value.trim();
    if (LOOKS_LIKE_EMAIL.test(value)) this.#check.timer = setTimeout(() => this.#checkEmail(value), CHECK_DEBOUNCE_MS);
  }

  #cancelCheck() {
    clearTimeout(this.#check.timer);
    this.#check.controller?.abort('superseded');
    this.#check.controller = null;
  }

  async #checkEmail(value) {
    const controller = new AbortController();
    this.#check.controller = controller;
    this.#check.value = value;
    const timeout = setTimeout(() => controller.abort('timeout'), CHECK_TIMEOUT_MS);
    const action = this.#tracer.start('check_email');
    try {
      const result = await this.#session.request(`/users/availability?${new URLSearchParams({ email: value })}`, { signal: controller.signal, action });
      action.endWithStatus(result.status);
      if (!controller.signal.aborted) this.#showAvailability(result, value);
    } catch (error) {
      // Aborted (stale or too slow), offline or no token yet: the submit still says what is wrong.
      action.end('error', controller.signal.aborted ? controller.signal.reason : error.name);
    } finally {
      clearTimeout(timeout);
      if (this.#check.controller === controller) this.#check.controller = null;
    }
  }

  /** 200: available or taken; 400: not an email. Anything else: the check cannot say. */
  #showAvailability(result, value) {
    if (result.status === 200 && result.data) {
      const email = result.data.email ?? value;
      if (result.data.available) setFieldMessage(this.#email, `${email} is available`, 'ok');
      else setFieldMessage(this.#email, `${email} is already taken`, 'error');
    } else if (result.status === 400) {
      setFieldMessage(this.#email, fieldDetail(result.data, '#/email') ?? result.data?.detail ?? 'is not a valid email address', 'error');
    }
  }
}
