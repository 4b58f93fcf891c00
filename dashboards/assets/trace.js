// The trace waterfall: spans on a time axis, self time, attributes, errors highlighted.
import { getJson, loading, failed } from './api.js';
import { h, fmtMs, fmtDateTime, niceStep, links } from './format.js';

/** Orders spans depth-first (children by start time) with their depth. */
function tree(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_span_id && ids.has(s.parent_span_id)) {
      if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
      children.get(s.parent_span_id).push(s);
    } else roots.push(s);
  }
  const byStart = (a, b) => a.start_ms - b.start_ms;
  const out = [];
  const walk = (s, depth) => {
    out.push({ span: s, depth });
    for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  return out;
}

/** Renders the waterfall of `traceId` into `el`. */
export async function renderTrace(el, traceId) {
  loading(el, `trace ${traceId}`);
  let trace;
  try {
    trace = await getJson(`/api/v1/traces/${encodeURIComponent(traceId)}`);
  } catch (e) {
    if (e.status === 404) {
      el.replaceChildren(h('p', { class: 'state empty', id: 'trace-missing' },
        `The spans of trace ${traceId} are not stored. Headlight counts every transaction but keeps the spans of errors, of transactions slower than their running p95 and of a sample of the rest; pick another transaction (errors and slow ones always have spans) or the spans are past the raw retention.`));
      return;
    }
    failed(el, `trace ${traceId}`, e);
    return;
  }
  const rows = tree(trace.spans);
  const start = Math.min(...trace.spans.map((s) => s.start_ms));
  const end = Math.max(...trace.spans.map((s) => s.start_ms + s.duration_ms));
  const total = Math.max(end - start, 1e-6);
  const pct = (ms) => `${((ms / total) * 100).toFixed(3)}%`;
  const errors = trace.spans.filter((s) => s.error).length;
  const services = [...new Set(trace.spans.map((s) => s.service))];
  const attrs = h('div', { class: 'attrs' });
  const showAttrs = (s, row) => {
    for (const r of list.querySelectorAll('.wf-row.selected')) r.classList.remove('selected');
    row.classList.add('selected');
    const entries = Object.entries(s.attributes || {});
    attrs.replaceChildren(
      h('h2', {}, `${s.name} `, h('span', { class: 'muted' }, `${s.kind} · ${s.service}`)),
      h('table', { class: 'data span-attrs' }, h('tbody', {},
        h('tr', {}, h('td', {}, 'span id'), h('td', {}, h('code', {}, s.span_id))),
        h('tr', {}, h('td', {}, 'start'), h('td', {}, `${fmtDateTime(s.start_ms)} (+${fmtMs(s.start_ms - start)})`)),
        h('tr', {}, h('td', {}, 'duration'), h('td', {}, fmtMs(s.duration_ms))),
        h('tr', {}, h('td', {}, 'self time'), h('td', {}, fmtMs(s.self_ms))),
        h('tr', {}, h('td', {}, 'status'), h('td', { class: s.error ? 'err' : '' }, s.error ? 'error' : 'ok')),
        entries.map(([k, v]) => h('tr', { class: 'attr' }, h('td', {}, k), h('td', { class: 'wrap' }, h('code', {}, typeof v === 'string' ? v : JSON.stringify(v))))),
      )),
      ...(entries.length ? [] : [h('p', { class: 'muted' }, 'no attributes')]));
  };
  // The time axis.
  const step = niceStep(total / 6);
  const ticks = h('div', { class: 'ticks' });
  for (let t = 0; t <= total + 1e-9; t += step) ticks.append(h('span', { style: `left:${pct(t)}` }, fmtMs(t)));
  const list = h('div', { class: 'waterfall', role: 'table' },
    h('div', { class: 'wf-axis' }, h('div', {}, 'span'), ticks, h('div', { style: 'text-align:right;padding-right:.3rem' }, 'duration · self')));
  for (const { span: s, depth } of rows) {
    const bar = h('div', {
      class: `wf-bar${s.error ? ' error' : ''}`,
      style: `left:${pct(s.start_ms - start)};width:${pct(s.duration_ms)}`,
      title: `${s.name}: ${fmtMs(s.duration_ms)} (self ${fmtMs(s.self_ms)})`,
    }, h('div', { class: 'wf-self', style: `width:${s.duration_ms > 0 ? ((s.self_ms / s.duration_ms) * 100).toFixed(2) : 0}%` }));
    const row = h('div', {
      class: `wf-row${s.error ? ' error' : ''}`, role: 'row',
      dataset: { span: s.span_id, name: s.name, duration: s.duration_ms, self: s.self_ms, depth },
    },
    h('div', { class: 'wf-name', style: `padding-left:${0.3 + depth * 1.1}rem` }, s.error ? '⚠ ' : '', s.name, h('span', { class: 'svc' }, s.service)),
    h('div', { class: 'wf-track' }, bar),
    h('div', { class: 'wf-time' }, `${fmtMs(s.duration_ms)} · ${fmtMs(s.self_ms)}`));
    row.addEventListener('click', () => showAttrs(s, row));
    list.append(row);
  }
  el.replaceChildren(
    h('div', { class: 'kv trace-head' },
      h('dt', {}, 'trace'), h('dd', {}, h('a', { href: links.trace(trace.trace_id) }, h('code', {}, trace.trace_id))),
      h('dt', {}, 'started'), h('dd', {}, fmtDateTime(start)),
      h('dt', {}, 'duration'), h('dd', { id: 'trace-duration' }, fmtMs(total)),
      h('dt', {}, 'spans'), h('dd', {}, `${trace.spans.length} in ${services.join(', ')}`),
      h('dt', {}, 'errors'), h('dd', { class: errors ? 'err' : '' }, errors ? `${errors} span${errors > 1 ? 's' : ''} failed` : 'none')),
    h('p', { class: 'muted' }, 'The dark part of a bar is the span\'s self time (not spent in its children). Click a span for its attributes.'),
    list, attrs);
  const first = list.querySelector('.wf-row.error') || list.querySelector('.wf-row');
  if (first) first.click();
}

/** The stand-alone trace page: #/trace/{id}. */
export async function renderTracePage(root, ctx, traceId) {
  ctx.crumbs(h('a', { href: '#/' }, 'services'), `trace ${traceId.slice(0, 8)}…`);
  const card = h('section', { class: 'card trace', id: 'trace' });
  root.append(h('h1', {}, 'Trace'), card);
  await renderTrace(card, traceId);
}
