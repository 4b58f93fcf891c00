// Services → transactions: throughput, error rate, p50/p95/p99, Apdex; sortable.
import { getJson, pool, loading, failed } from './api.js';
import { h, fmtMs, fmtPct, fmtRate, fmtInt, links } from './format.js';

/** The columns of the transactions table: key, header, value of a row, formatter. */
const COLUMNS = [
  { key: 'transaction', label: 'transaction', value: (r) => r.transaction ?? '' },
  { key: 'throughput', label: 'throughput', num: true, value: (r) => r.throughput, fmt: fmtRate },
  { key: 'error_rate', label: 'error rate', num: true, value: (r) => r.summary.error_rate, fmt: (v) => fmtPct(v) },
  { key: 'p50', label: 'p50', num: true, value: (r) => r.summary.p50_ms, fmt: fmtMs },
  { key: 'p95', label: 'p95', num: true, value: (r) => r.summary.p95_ms, fmt: fmtMs },
  { key: 'p99', label: 'p99', num: true, value: (r) => r.summary.p99_ms, fmt: fmtMs },
  { key: 'apdex', label: 'Apdex', num: true, value: (r) => r.summary.apdex, fmt: (v) => (v === null || v === undefined ? '–' : v.toFixed(3)) },
  { key: 'count', label: 'transactions', num: true, value: (r) => r.summary.count, fmt: fmtInt },
];

const sortState = JSON.parse(sessionStorage.getItem('headlight.sort') || '{"key":"throughput","dir":-1}');

/** Fetches the range summary of one transaction (or the whole service when `transaction` is undefined). */
async function summary(ctx, service, transaction, range) {
  const body = await getJson('/api/v1/latency', {
    service, transaction, from: range.from, to: range.to, step: `${ctx.rangeS}s`, apdex_t_ms: ctx.apdexT,
  });
  const minutes = Math.max(1, (body.to - body.from) / 60000);
  return { service, transaction, summary: body.summary, throughput: body.summary.count / minutes };
}

export async function renderOverview(root, ctx, view) {
  ctx.crumbs(h('a', { href: '#/' }, 'services'));
  root.append(h('h1', {}, 'Services'));
  const status = h('div');
  root.append(status);
  loading(status, 'services');
  let services;
  try {
    services = (await getJson('/api/v1/services')).services;
  } catch (e) {
    failed(status, 'the services', e);
    return;
  }
  if (view !== ctx.current) return;
  if (!services.length) {
    status.replaceChildren(noData(ctx));
    return;
  }
  status.replaceChildren();
  const range = ctx.range();
  for (const s of services) {
    const card = h('section', { class: 'card service', dataset: { service: s.service } });
    const body = h('div');
    card.append(h('div', {},
      h('h2', {}, h('a', { href: links.service(s.service) }, s.service), ' ',
        h('span', { class: 'muted' }, `${s.transactions.length} transactions · versions ${s.versions.join(', ') || '–'} · ${s.environments.join(', ')}`)),
      s.overflowed ? h('p', { class: 'state error' }, `More than ${s.transaction_cap} transaction names: the rest are counted under "other". Use route templates (http.route) instead of raw paths, or raise aggregation.max_transactions_per_service.`) : null,
    ), body);
    root.append(card);
    loading(body, `${s.service}'s transactions`);
    serviceTable(body, ctx, s, range).catch((e) => failed(body, `${s.service}'s transactions`, e));
  }
}

/** The empty state: no service has reported yet. */
export function noData(ctx) {
  return h('div', { class: 'state empty', id: 'no-data' },
    h('p', {}, h('strong', {}, 'No data yet: send OTLP to this collector.')),
    h('p', {}, 'OTLP/gRPC: ', h('code', {}, ctx.otlpGrpc), ' · OTLP/HTTP: ', h('code', {}, `http://${ctx.otlpHttp}/v1/traces`)),
    h('p', {}, 'With any OpenTelemetry SDK: ', h('code', {}, `OTEL_EXPORTER_OTLP_ENDPOINT=http://${ctx.otlpGrpc} OTEL_SERVICE_NAME=my-service`),
      '; with the Rust agent: ', h('code', {}, 'headlight_agent::init()'), '. Or run ', h('code', {}, 'headlight demo'), ' to see it with generated traffic.'),
    h('p', { class: 'muted' }, 'This page does not refresh by itself: reload it once data is sent.'));
}

async function serviceTable(el, ctx, service, range) {
  const names = [undefined, ...service.transactions];
  const rows = await pool(names, 6, (t) => summary(ctx, service.service, t, range));
  const table = h('table', { class: 'data transactions' });
  const head = h('tr');
  for (const c of COLUMNS) {
    const th = h('th', { class: `sortable${c.num ? ' num' : ''}`, dataset: { col: c.key }, title: 'sort' }, c.label);
    th.addEventListener('click', () => {
      sortState.dir = sortState.key === c.key ? -sortState.dir : (c.num ? -1 : 1);
      sortState.key = c.key;
      sessionStorage.setItem('headlight.sort', JSON.stringify(sortState));
      fill();
    });
    head.append(th);
  }
  const tbody = h('tbody');
  table.append(h('thead', {}, head), tbody);
  const fill = () => {
    for (const th of head.children) {
      th.classList.toggle('sorted-asc', th.dataset.col === sortState.key && sortState.dir > 0);
      th.classList.toggle('sorted-desc', th.dataset.col === sortState.key && sortState.dir < 0);
    }
    const col = COLUMNS.find((c) => c.key === sortState.key) || COLUMNS[1];
    const txns = rows.slice(1).sort((a, b) => {
      const va = col.value(a); const vb = col.value(b);
      if (va === vb) return 0;
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      return (va < vb ? -1 : 1) * sortState.dir;
    });
    tbody.replaceChildren(row(rows[0], true), ...txns.map((r) => row(r, false)));
  };
  const row = (r, whole) => {
    const href = whole ? links.service(r.service) : links.transaction(r.service, r.transaction);
    const tr = h('tr', { class: whole ? 'service-row' : 'txn-row', dataset: { transaction: whole ? '' : r.transaction } });
    for (const c of COLUMNS) {
      if (c.key === 'transaction') {
        tr.append(h('td', { dataset: { col: c.key } }, h('a', { href }, whole ? 'all transactions' : r.transaction)));
        continue;
      }
      const v = c.value(r);
      tr.append(h('td', { class: 'num', dataset: { col: c.key, value: v ?? '' } }, c.fmt(v)));
    }
    return tr;
  };
  fill();
  const total = rows[0].summary.count;
  el.replaceChildren(table);
  if (total === 0) {
    el.append(h('p', { class: 'state empty' }, `No transactions of ${service.service} in this range: pick a longer range above, or check that the service is still sending.`));
  }
}
