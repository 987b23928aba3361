// The gateway's page: create users, watch them arrive over the live feed, see every process's
// health and, with an admin token, switch faults on and off. Plain ES modules, no framework, no
// build step. This entry reads /ui/config and wires the parts together.

import { Session, request } from './api.js';
import { h, safeUrl, traceLinks } from './dom.js';
import { Faults } from './faults.js';
import { Feed } from './feed.js';
import { Health } from './health.js';
import { Lists } from './lists.js';
import { Tracer } from './tracing.js';
import { UserForm } from './user-form.js';

/** /ui/config, or null when the gateway does not answer it. */
async function readConfig() {
  try {
    const result = await request('/ui/config');
    if (result.ok && result.data && typeof result.data === 'object') return result.data;
  } catch {
    // below
  }
  return null;
}

/** The tools' links in the top bar, for the ones the gateway knows. */
function showToolLinks(config) {
  for (const link of document.querySelectorAll('a[data-config]')) {
    const url = safeUrl(config[link.dataset.config]);
    if (url) {
      link.href = url;
      link.hidden = false;
    }
  }
}

/** The page's spans leave while it still can: every one when it goes, the queued ones when hidden. */
function exportWhenHidden(tracer) {
  addEventListener('pagehide', () => tracer.pageHidden());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') tracer.flush({ keepalive: true });
  });
}

async function start() {
  // Resource Timing keeps 250 entries: the health poll alone fills them in 20 minutes, and the
  // actions' requests would then go without their timings.
  performance.addEventListener('resourcetimingbufferfull', () => performance.clearResourceTimings());
  const config = await readConfig();
  const session = new Session({ development: config?.development === true });
  const tracer = new Tracer(config?.frontend);
  exportWhenHidden(tracer);
  const traceLink = traceLinks(config?.zipkin_url);
  const lists = new Lists({ session, tracer, traceLink });
  const feed = new Feed({ token: () => session.token() });
  feed.onEvent((event, at) => tracer.frameArrived({ traceId: event.trace_id, type: event.type, id: event.id, at }));
  feed.onEvent((event) => lists.receive(event));
  const form = new UserForm({ session, tracer, lists, traceLink });
  form.start({
    onTokenChange: () => {
      feed.connect();
      lists.load();
    },
  });
  if (config) showToolLinks(config);
  else form.say('error', h('p', { text: 'The page could not read its configuration; paste a bearer token to create users.' }));
  new Faults({ tracer, traceLink, kinds: config?.fault_kinds }).start();
  new Health().start();
  feed.start();
  await lists.load();
}

start();
