// A service or transaction page: the live hitmap with drag-to-select drill-down, the trace
// waterfall, trend charts, the operation breakdown, deploys and comparisons.
import { getJson, pool, loading, failed, empty, url } from './api.js';
import { h, fmtMs, fmtPct, fmtDateTime, fmtTime, fmtInt, toLocalInput, fmtTick, timeStep, links } from './format.js';
import { Hitmap, legend, xStep } from './hitmap.js';
import { trendCharts } from './trend.js';
import { renderTrace } from './trace.js';
import { verdictBadge } from './report.js';
import { noData } from './overview.js';

const LIVE_MS = 5000;
const SELECTION_LIMIT = 500;

export async function renderService(root, ctx, { service, transaction }, view) {
  const filter = { service, transaction };
  ctx.crumbs(h('a', { href: '#/' }, 'services'), h('a', { href: links.service(service) }, service), transaction ? transaction : null);
  document.title = `${transaction || service} · Headlight`;
  const picker = h('select', { id: 'transaction-picker', 'aria-label': 'transaction' }, h('option', { value: '' }, 'all transactions'));
  picker.addEventListener('change', () => {
    location.hash = picker.value ? links.transaction(service, picker.value) : links.service(service);
  });
  root.append(h('h1', {}, transaction ? [transaction, h('span', { class: 'muted' }, ` · ${service}`)] : service, ' ', picker));

  // Cards, filled independently so one failure does not blank the page.
  const hitmapCard = h('section', { class: 'card', id: 'hitmap' });
  const selectionCard = h('section', { class: 'card', id: 'selection', hidden: true });
  const traceCard = h('section', { class: 'card trace', id: 'trace', hidden: true });
  const trends = h('section', { class: 'card', id: 'trends' });
  const breakdown = h('section', { class: 'card', id: 'breakdown' });
  const deploysCard = h('section', { class: 'card', id: 'deploys' });
  const compareCard = h('section', { class: 'card', id: 'compare' });
  const doraCard = h('section', { class: 'card', id: 'dora' });
  root.append(hitmapCard, selectionCard, traceCard, h('div', { class: 'row' }, trends, breakdown), deploysCard, compareCard, doraCard);

  let info;
  try {
    const services = (await getJson('/api/v1/services')).services;
    info = services.find((s) => s.service === service);
    if (!info) {
      hitmapCard.replaceChildren(services.length
        ? h('p', { class: 'state error' }, `The collector has seen no service named "${service}". `, h('a', { href: '#/' }, 'Pick one of the services'), '.')
        : noData(ctx));
      for (const c of [trends, breakdown, deploysCard, doraCard, compareCard]) c.hidden = true;
      return;
    }
  } catch (e) {
    failed(hitmapCard, 'the services', e);
    return;
  }
  for (const t of info.transactions) picker.append(h('option', { value: t, selected: t === transaction }, t));

  let deploys = [];
  try {
    deploys = (await getJson('/api/v1/deploys', { service, limit: 200 })).deploys;
  } catch (_) {
    deploys = []; // the deploys card says it
  }
  if (view !== ctx.current) return;

  setupHitmap(hitmapCard, selectionCard, traceCard, ctx, filter, deploys, view);
  fillTrends(trends, ctx, filter, deploys).catch((e) => failed(trends, 'the trends', e));
  fillBreakdown(breakdown, ctx, filter).catch((e) => failed(breakdown, 'the breakdown', e));
  fillDeploys(deploysCard, ctx, service).catch((e) => failed(deploysCard, 'the deploys', e));
  fillDora(doraCard, service).catch((e) => failed(doraCard, 'the delivery metrics', e));
  compareForm(compareCard, ctx, info);
}

// DORA metrics over the last 30 days and the service's recent alerts.
async function fillDora(card, service) {
  card.append(h('h2', {}, 'Delivery (last 30 days)'));
  const body = h('div');
  card.append(body);
  loading(body, 'the delivery metrics');
  const [d, a] = await Promise.all([
    getJson('/api/v1/dora', { service }),
    getJson('/api/v1/alerts', { service, limit: 20 }),
  ]);
  const hours = (ms) => (ms == null ? '–' : ms < 3_600_000 ? `${Math.round(ms / 60_000)} min` : `${(ms / 3_600_000).toFixed(1)} h`);
  const stat = (id, label, value) => h('div', { class: 'stat', id }, h('div', { class: 'value' }, value), h('div', { class: 'muted' }, label));
  const stats = h('div', { class: 'stats' },
    stat('dora-frequency', 'deploys per day', `${d.deploys_per_day.toFixed(2)} (${fmtInt(d.deploys)} deploys)`),
    stat('dora-failure', 'change failure rate', d.change_failure_rate == null ? '–' : `${fmtPct(d.change_failure_rate, 0)} (${fmtInt(d.failed_deploys)} failed)`),
    stat('dora-restore', 'median time to restore', hours(d.median_time_to_restore_ms)),
    stat('dora-lead', 'median lead time', hours(d.median_lead_time_ms)));
  const alerts = a.alerts.length
    ? h('table', { class: 'data alerts' },
      h('thead', {}, h('tr', {}, h('th', {}, 'started'), h('th', {}, 'state'), h('th', {}, 'alert'), h('th', {}, 'deliveries'))),
      h('tbody', {}, a.alerts.map((x) => h('tr', { class: `alert-row ${x.state}`, dataset: { key: x.key } },
        h('td', {}, fmtDateTime(x.started_ms)), h('td', {}, x.state), h('td', {}, x.summary),
        h('td', {}, x.deliveries.map((dl) => `${dl.channel}: ${dl.state}`).join(', '))))))
    : h('p', { class: 'muted' }, 'No alerts for this service. Rules are configured under [[alerts.rules]] (docs/alerts.md).');
  body.replaceChildren(stats, alerts);
}

function setupHitmap(card, selectionCard, traceCard, ctx, filter, deploys, view) {
  const status = h('span', { class: 'live', id: 'live-status' }, 'loading…');
  const pause = h('button', { type: 'button', class: 'pause' }, 'pause');
  const note = h('div', { class: 'hitmap-note' });
  card.append(h('h2', {}, 'Hitmap ', status, ' ', pause), note);
  const hitmap = new Hitmap(card, { onSelect: (sel) => listSelection(selectionCard, traceCard, ctx, filter, sel) });
  card.append(legend());
  window.__headlightHitmap = hitmap; // for the browser tests and the console
  let live = true;
  let refreshes = 0;
  pause.addEventListener('click', () => {
    live = !live;
    pause.textContent = live ? 'pause' : 'resume';
    if (live) refresh();
  });
  const exports = h('span', { class: 'legend exports' });
  card.append(exports);
  const refresh = async () => {
    card.dataset.refreshStartedAt = String(Date.now());
    const range = ctx.range();
    const params = { ...filter, from: range.from, to: range.to, x_step_s: xStep(ctx.rangeS), y_buckets: 40, y_scale: 'log' };
    exports.replaceChildren('server-rendered: ',
      h('a', { href: url('/api/v1/heatmap.png', { ...params, width: 1400, height: 500 }), target: '_blank' }, 'hitmap PNG'), ' · ',
      h('a', { href: url('/api/v1/heatmap.svg', { ...params, width: 1400, height: 500 }), target: '_blank' }, 'SVG'), ' · ',
      h('a', { href: url('/api/v1/latency.svg', { ...filter, from: range.from, to: range.to, width: 1200, height: 700 }), target: '_blank' }, 'trends SVG'));
    try {
      const data = await getJson('/api/v1/heatmap', params);
      if (view !== ctx.current) return;
      refreshes += 1;
      card.dataset.refreshes = String(refreshes);
      card.dataset.total = String(data.total);
      hitmap.setData(data, deploys);
      status.className = live ? 'live on' : 'live';
      status.textContent = `${live ? 'live' : 'paused'} · ${fmtInt(data.total)} transactions · updated ${fmtTime(Date.now())}`;
      if (data.total === 0) {
        note.replaceChildren(h('p', { class: 'state empty', id: 'hitmap-empty' },
          `No transactions of ${filter.transaction || filter.service} in the ${ctx.rangeS >= 3600 ? `last ${ctx.rangeS / 3600} h` : `last ${ctx.rangeS / 60} min`}: pick a longer range above, or check that the service still sends to ${ctx.otlpGrpc} (gRPC) / ${ctx.otlpHttp} (HTTP).`));
      } else note.replaceChildren();
    } catch (e) {
      if (view !== ctx.current) return;
      status.className = 'live';
      status.textContent = 'not updating';
      const hint = e.status === 404 ? 'This collector does not serve /api/v1/heatmap: update headlight.' : 'Retrying every 5 s.';
      note.replaceChildren(h('p', { class: 'state error', role: 'alert' }, `Could not load the hitmap: ${e.message} ${hint}`));
    }
  };
  refresh();
  const timer = setInterval(() => { if (live && !document.hidden) refresh(); }, LIVE_MS);
  ctx.onLeave(() => { clearInterval(timer); hitmap.destroy(); });
}

async function listSelection(card, traceCard, ctx, filter, sel) {
  card.hidden = false;
  card.dataset.from = String(sel.from);
  card.dataset.to = String(sel.to);
  card.dataset.minMs = String(sel.min_ms);
  card.dataset.maxMs = String(sel.max_ms);
  card.dataset.cells = String(sel.count);
  const head = h('h2', {}, 'Transactions in the selection');
  const what = h('p', { class: 'muted', id: 'selection-bounds' },
    `ended ${fmtTime(sel.from)}–${fmtTime(sel.to)}, took ${fmtMs(sel.min_ms)}–${fmtMs(sel.max_ms)}; the hitmap counts ${fmtInt(sel.count)} here (${fmtInt(sel.errors)} errors)`);
  const body = h('div');
  card.replaceChildren(head, what, body);
  if (sel.count === 0) {
    empty(body, 'No transaction in these cells: drag over the coloured ones.');
    card.dataset.listed = '0';
    return;
  }
  loading(body, 'the transactions');
  let list;
  try {
    list = (await getJson('/api/v1/transactions', {
      // Row j is [edge j, edge j+1): durations are whole µs, so the top edge less 1 µs.
      ...filter, from: sel.from, to: sel.to, min_ms: sel.min_ms, max_ms: (sel.max_ms - 0.001).toFixed(3), limit: SELECTION_LIMIT,
    })).transactions;
  } catch (e) {
    failed(body, 'the transactions', e);
    return;
  }
  card.dataset.listed = String(list.length);
  const table = h('table', { class: 'data selection-list' },
    h('thead', {}, h('tr', {}, h('th', {}, 'ended'), h('th', { class: 'num' }, 'duration'), filter.transaction ? null : h('th', {}, 'transaction'),
      h('th', {}, 'version'), h('th', {}, 'status'), h('th', {}, 'trace'))));
  const tbody = h('tbody');
  for (const t of list) {
    const tr = h('tr', { class: `clickable${t.error ? ' error' : ''}`, dataset: { trace: t.trace_id, duration: t.duration_ms, end: t.end_ms }, title: 'open the trace' },
      h('td', {}, fmtDateTime(t.end_ms)), h('td', { class: 'num' }, fmtMs(t.duration_ms)),
      filter.transaction ? null : h('td', {}, t.transaction),
      h('td', {}, t.version), h('td', { class: t.error ? 'err' : '' }, t.error ? 'error' : 'ok'),
      h('td', {}, h('code', {}, t.trace_id.slice(0, 16)), ' ', h('a', { href: links.trace(t.trace_id), title: 'open on its own page' }, '↗')));
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a')) return;
      for (const r of tbody.querySelectorAll('tr.selected')) r.classList.remove('selected');
      tr.classList.add('selected');
      traceCard.hidden = false;
      renderTrace(traceCard, t.trace_id).then(() => traceCard.scrollIntoView({ block: 'nearest' }));
    });
    tbody.append(tr);
  }
  table.append(tbody);
  const more = sel.count > list.length
    ? h('p', { class: 'muted' }, `Showing the newest ${fmtInt(list.length)} of ${fmtInt(sel.count)}: select a smaller region to see the others.`)
    : null;
  body.replaceChildren(h('p', { id: 'selection-count' }, `${fmtInt(list.length)} transactions · click one to open its trace`), ...(more ? [more] : []), table);
}

async function fillTrends(card, ctx, filter, deploys) {
  card.append(h('h2', {}, 'Trends'));
  const body = h('div');
  card.append(body);
  loading(body, 'the trends');
  const range = ctx.range();
  const latency = await getJson('/api/v1/latency', { ...filter, from: range.from, to: range.to, apdex_t_ms: ctx.apdexT });
  const s = latency.summary;
  body.replaceChildren(
    h('p', { class: 'muted', id: 'trend-summary' },
      `${fmtInt(s.count)} transactions · p50 ${fmtMs(s.p50_ms)} · p95 ${fmtMs(s.p95_ms)} · p99 ${fmtMs(s.p99_ms)} · errors ${fmtPct(s.error_rate)} · Apdex(${ctx.apdexT} ms) ${s.apdex === null ? '–' : s.apdex.toFixed(3)}`),
    ...trendCharts(latency, deploys));
}

async function fillBreakdown(card, ctx, filter) {
  card.append(h('h2', {}, 'Where the time goes'));
  const body = h('div');
  card.append(body);
  loading(body, 'the breakdown');
  const range = ctx.range();
  const b = await getJson('/api/v1/breakdown', { ...filter, from: range.from, to: range.to });
  if (!b.operations.length) {
    empty(body, 'No child operations recorded in this range: the transactions have no child spans, or none was received.');
    return;
  }
  body.replaceChildren(h('table', { class: 'data breakdown' },
    h('thead', {}, h('tr', {}, h('th', {}, 'operation'), h('th', {}, 'kind'), h('th', { class: 'num' }, 'calls'),
      h('th', { class: 'num' }, 'self time / transaction'), h('th', { class: 'num' }, 'share'))),
    h('tbody', {}, b.operations.map((o) => h('tr', { dataset: { operation: o.operation } },
      h('td', {}, o.operation), h('td', { class: 'muted' }, o.kind), h('td', { class: 'num' }, fmtInt(o.count)),
      h('td', { class: 'num' }, fmtMs(o.self_ms_per_transaction)),
      h('td', { class: 'num' }, h('span', { class: 'share-bar', style: `display:inline-block;height:8px;background:#5b8def;width:${Math.round(o.share * 60)}px;margin-right:.4rem` }), fmtPct(o.share, 1)))))),
  h('p', { class: 'muted' }, `Self time per transaction over ${fmtInt(b.transactions)} transactions.`));
}

async function fillDeploys(card, ctx, service) {
  card.append(h('h2', {}, 'Deploys'));
  const body = h('div');
  card.append(body);
  loading(body, 'the deploys');
  const deploys = (await getJson('/api/v1/deploys', { service, limit: 50 })).deploys;
  if (!deploys.length) {
    empty(body, 'No deploys of this service yet. Record one from your pipeline with ',
      h('code', {}, `headlight deploy --service ${service} --version V`), ' (or POST /api/v1/deploys); a new service.version is marked automatically.');
    return;
  }
  const verdicts = await pool(deploys.slice(0, 20), 4, async (d) => {
    try {
      return (await getJson(`/api/v1/deploys/${encodeURIComponent(d.id)}/comparison`)).verdict || 'pending';
    } catch (_) {
      return null;
    }
  });
  // The timeline: oldest to newest over the deploys' span (at least the selected range).
  const now = Date.now();
  const from = Math.min(now - ctx.rangeS * 1000, ...deploys.map((d) => d.time_ms));
  const span = Math.max(1, now - from);
  const pos = (t) => `${(3 + ((t - from) / span) * 94).toFixed(2)}%`;
  const timeline = h('div', { class: 'timeline', id: 'deploy-timeline' });
  const step = timeStep(span, 6);
  for (let t = Math.ceil(from / step) * step; t <= now; t += step) timeline.append(h('span', { class: 'tick', style: `left:${pos(t)}` }, fmtTick(t, step)));
  deploys.forEach((d, i) => {
    timeline.append(h('a', {
      class: `marker${d.automatic ? ' auto' : ''}`, href: links.deploy(d.id), style: `left:${pos(d.time_ms)}`,
      title: `${d.version} (${d.environment}) at ${fmtDateTime(d.time_ms)}${d.automatic ? ', automatic marker' : ''}`,
    }, verdicts[i] ? verdictBadge(verdicts[i]) : null, h('span', {}, d.version), h('span', { class: 'dot' })));
  });
  const table = h('table', { class: 'data deploys' },
    h('thead', {}, h('tr', {}, h('th', {}, 'time'), h('th', {}, 'version'), h('th', {}, 'environment'), h('th', {}, 'commit'),
      h('th', {}, 'verdict'), h('th', {}, ''))),
    h('tbody', {}, deploys.map((d, i) => h('tr', { class: 'deploy-row', dataset: { deploy: d.id, version: d.version } },
      h('td', {}, fmtDateTime(d.time_ms)), h('td', {}, d.version), h('td', {}, d.environment),
      h('td', {}, d.commit ? h('code', {}, d.commit) : h('span', { class: 'muted' }, d.automatic ? 'automatic marker' : '–')),
      h('td', {}, verdicts[i] ? verdictBadge(verdicts[i]) : h('span', { class: 'muted' }, '–')),
      h('td', {}, h('a', { href: links.deploy(d.id), class: 'report-link' }, 'comparison report →'))))));
  body.replaceChildren(timeline, table);
}

function compareForm(card, ctx, info) {
  const range = ctx.range();
  const versions = info.versions.filter((v) => v !== 'unknown');
  const opt = (v, sel) => h('option', { value: v, selected: v === sel }, v);
  const kind = h('select', { name: 'kind' }, h('option', { value: 'canary' }, 'canary: version against version'), h('option', { value: 'period' }, 'period: now against earlier'));
  const env = h('select', { name: 'env' }, h('option', { value: '' }, 'all'), info.environments.map((e) => opt(e)));
  const baseline = h('select', { name: 'baseline_version' }, versions.map((v) => opt(v, versions[Math.max(0, versions.length - 2)])));
  const canary = h('select', { name: 'canary_version' }, versions.map((v) => opt(v, versions[versions.length - 1])));
  // Whole minutes that are complete (a range still filling would leave the report pending).
  const end = Math.floor(range.to / 60000) * 60000 - 60000;
  const from = h('input', { type: 'datetime-local', name: 'from', value: toLocalInput(end - (range.to - range.from)) });
  const to = h('input', { type: 'datetime-local', name: 'to', value: toLocalInput(end) });
  const before = h('select', { name: 'before' },
    h('option', { value: 'previous' }, 'the period just before'),
    h('option', { value: '1d' }, 'the same hours a day earlier'),
    h('option', { value: '7d' }, 'the same hours a week earlier'));
  const canaryFields = h('span', { class: 'canary-fields', style: 'display:contents' },
    h('label', {}, 'baseline version', baseline), h('label', {}, 'canary version', canary));
  const periodFields = h('span', { class: 'period-fields', style: 'display:none' }, h('label', {}, 'compared with', before));
  const error = h('p', { class: 'state error', hidden: true, role: 'alert' });
  const form = h('form', { class: 'compare', id: 'compare-form' }, h('label', {}, 'comparison', kind), h('label', {}, 'environment', env),
    canaryFields, periodFields, h('label', {}, 'from', from), h('label', {}, 'to', to), h('button', { type: 'submit' }, 'compare'));
  kind.addEventListener('change', () => {
    canaryFields.style.display = kind.value === 'canary' ? 'contents' : 'none';
    periodFields.style.display = kind.value === 'period' ? 'contents' : 'none';
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new Date(from.value).getTime(); const t = new Date(to.value).getTime();
    const fail = (m) => { error.textContent = m; error.hidden = false; };
    if (!(f < t)) return fail('"from" must be before "to".');
    const q = new URLSearchParams({ service: info.service });
    if (env.value) q.set('env', env.value);
    if (kind.value === 'canary') {
      if (!baseline.value || !canary.value) return fail('This service reports no versions to compare: set service.version in its resource.');
      if (baseline.value === canary.value) return fail('Pick two different versions.');
      q.set('baseline_version', baseline.value); q.set('canary_version', canary.value);
      q.set('from', String(f)); q.set('to', String(t));
    } else {
      q.set('after_from', String(f)); q.set('after_to', String(t));
      if (before.value === 'previous') { q.set('before_from', String(f - (t - f))); q.set('before_to', String(f)); }
      else q.set('offset', before.value);
    }
    location.hash = `#/compare?${q}`;
  });
  card.append(h('div', {}, h('h2', {}, 'Compare'),
    h('p', { class: 'muted' }, 'Canary: two versions running side by side over the same time. Period: this service now against an earlier period. Both use the deploy comparison\'s tests and thresholds.'),
    versions.length < 2 ? h('p', { class: 'muted' }, 'This service has reported only one version so far: a canary comparison needs two.') : null,
    form, error));
}
