// What every part of the page builds its elements with.

export const HEX32 = /^[0-9a-f]{32}$/;

/** Builds an element: h('a', {class: 'x', href}, 'text', child). */
export function h(tag, props = {}, ...children) {
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

export const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** A <time>: the time of day for today, the date and time before. */
export function timeEl(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  const today = date.toDateString() === new Date().toDateString();
  return h('time', { datetime: iso, title: date.toLocaleString(), text: (today ? timeFormat : dateFormat).format(date) });
}

/** A notice for a form's message slot: kind is 'success' or 'error'. */
export const notice = (kind, ...content) => h('div', { class: `notice is-${kind}` }, ...content);

/** The message under a field: kind is 'error', 'ok' or null (then the field's hint). */
export function setFieldMessage(input, text, kind = null) {
  const message = document.getElementById(`${input.id}-msg`);
  message.dataset.hint ??= message.textContent;
  message.textContent = text || message.dataset.hint;
  message.className = kind ? `field-msg is-${kind}` : 'field-msg';
  if (kind === 'error') input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/** Clears the field's error once it is edited. */
export function clearErrorOnInput(input) {
  input.addEventListener('input', () => {
    if (input.getAttribute('aria-invalid') === 'true') setFieldMessage(input, '');
  });
}

/** The detail of a problem's error at `pointer` (#/email), if any. */
export function fieldDetail(problem, pointer) {
  const errors = Array.isArray(problem?.errors) ? problem.errors : [];
  return errors.find((error) => error?.pointer === pointer)?.detail ?? null;
}

/** An http(s) URL from the configuration, without its trailing slash; or null. */
export function safeUrl(value) {
  if (typeof value !== 'string' || !value) return null;
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href.replace(/\/$/, '') : null;
  } catch {
    return null;
  }
}

/** Makes the links to a trace in Zipkin; each is null without a Zipkin or a valid trace id. */
export function traceLinks(zipkinUrl) {
  const zipkin = safeUrl(zipkinUrl);
  return (traceId, what) => {
    if (!zipkin || !HEX32.test(traceId ?? '')) return null;
    return h('a', {
      class: 'trace-link',
      href: `${zipkin}/traces/${traceId}`,
      target: '_blank',
      rel: 'noopener',
      title: `Trace ${traceId}`,
      dataset: { traceId },
    }, 'Trace', h('span', { class: 'sr-only', text: ` of ${what} in Zipkin (opens in a new tab)` }));
  };
}
