// The Headlight UI: a hash router over the views, the shared controls (range, Apdex T).
import { h } from './format.js';
import { renderOverview } from './overview.js';
import { renderService } from './service.js';
import { renderTracePage } from './trace.js';
import { renderDeployPage, renderComparePage } from './report.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
const rangeSelect = document.getElementById('range');
const apdexInput = document.getElementById('apdex-t');

const meta = (name) => {
  const v = document.querySelector(`meta[name="${name}"]`)?.content || '';
  return v.startsWith('{{') ? '' : v;
};

/** What every view gets. */
const ctx = {
  otlpGrpc: meta('headlight-otlp-grpc') || '127.0.0.1:4317',
  otlpHttp: meta('headlight-otlp-http') || '127.0.0.1:4318',
  get rangeS() { return Number(rangeSelect.value); },
  get apdexT() { return Math.max(1, Number(apdexInput.value) || 500); },
  /** The current range in unix ms: [now - range, now]. */
  range() {
    const to = Date.now();
    return { from: to - this.rangeS * 1000, to };
  },
  cleanups: [],
  /** Registers something to stop when the view changes (timers). */
  onLeave(fn) { this.cleanups.push(fn); },
  /** Is this view still the one shown? */
  current: 0,
  crumbs(...parts) {
    crumbs.replaceChildren(...parts.filter(Boolean).flatMap((p, i) => (i ? [' / ', p] : [p])));
  },
};

// Restore and persist the controls.
const saved = JSON.parse(localStorage.getItem('headlight.controls') || '{}');
if (saved.rangeS && [...rangeSelect.options].some((o) => o.value === String(saved.rangeS))) rangeSelect.value = String(saved.rangeS);
if (saved.apdexT) apdexInput.value = String(saved.apdexT);
for (const [k, v] of new URLSearchParams(location.search)) {
  if (k === 'range') rangeSelect.value = v;
  if (k === 'apdex_t_ms') apdexInput.value = v;
}
const persist = () => localStorage.setItem('headlight.controls', JSON.stringify({ rangeS: ctx.rangeS, apdexT: ctx.apdexT }));
rangeSelect.addEventListener('change', () => { persist(); route(); });
apdexInput.addEventListener('change', () => { persist(); route(); });

/** The route: "#/service/shop/transaction/GET%20%2Forders" → ['service', 'shop', 'transaction', 'GET /orders']. */
function parse() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query || '') };
}

async function route() {
  for (const fn of ctx.cleanups.splice(0)) fn();
  ctx.current += 1;
  const view = ctx.current;
  const { parts, query } = parse();
  const body = h('div', { class: 'view' });
  main.replaceChildren(body);
  document.title = 'Headlight';
  try {
    if (parts.length === 0) await renderOverview(body, ctx, view);
    else if (parts[0] === 'service' && parts[1] !== undefined) {
      await renderService(body, ctx, { service: parts[1], transaction: parts[2] === 'transaction' ? parts[3] : undefined }, view);
    } else if (parts[0] === 'trace' && parts[1]) await renderTracePage(body, ctx, parts[1]);
    else if (parts[0] === 'deploy' && parts[1]) await renderDeployPage(body, ctx, parts[1], view);
    else if (parts[0] === 'compare') await renderComparePage(body, ctx, query, view);
    else {
      ctx.crumbs(h('a', { href: '#/' }, 'services'));
      body.append(h('p', { class: 'state error' }, 'There is no such page. ', h('a', { href: '#/' }, 'Go to the services.')));
    }
  } catch (e) {
    body.append(h('p', { class: 'state error', role: 'alert' }, `This page failed: ${e.message}. Reload to try again.`));
    throw e;
  }
}

window.addEventListener('hashchange', route);
route();
