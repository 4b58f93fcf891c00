// Comparison reports (deploy, canary, period): verdict, per-transaction verdicts, reasons,
// suspects, and the before/after histogram overlay.
import { getJson, loading, failed } from './api.js';
import { h, fmtMs, fmtPct, fmtChange, fmtDateTime, fmtInt, links } from './format.js';

const VERDICT_TEXT = {
  regression: 'regression',
  improvement: 'improvement',
  no_change: 'no change',
  insufficient_data: 'insufficient data',
};

/** A verdict badge. */
export function verdictBadge(verdict, big) {
  const v = verdict || 'pending';
  return h('span', { class: `verdict ${v}${big ? ' big' : ''}`, dataset: { verdict: v } }, VERDICT_TEXT[v] || v);
}

const SUMMARY = {
  regression: 'This comparison found a regression: at least one transaction got slower or fails more often, beyond the noise thresholds.',
  improvement: 'Some transactions got faster or fail less often; none regressed.',
  no_change: 'No transaction changed beyond the noise thresholds.',
  insufficient_data: 'Too few transactions on one side to decide: wait for more traffic or compare a longer range.',
};

function versions(v) {
  if (!v || v.kind === 'any') return 'all versions';
  if (v.kind === 'only') return `version ${v.version}`;
  return `versions other than ${v.version}`;
}

function side(label, s) {
  return [h('dt', {}, label), h('dd', {}, `${versions(s.versions)}, ${fmtDateTime(s.from_ms)} → ${fmtDateTime(s.to_ms)}`)];
}

/** Renders a ready or pending report into `el`. */
export function renderReport(el, report, options = {}) {
  const w = report.window;
  const head = h('div', { class: 'report-head' },
    h('p', {}, verdictBadge(report.status === 'pending' ? 'pending' : report.verdict, true), ' ',
      h('span', { id: 'report-summary' }, report.status === 'pending'
        ? `Pending: the after-window is not complete. The report is computed at ${fmtDateTime(report.ready_at_ms)}; this page refreshes until then.`
        : SUMMARY[report.verdict] || '')),
    h('dl', { class: 'kv' },
      h('dt', {}, 'kind'), h('dd', {}, report.kind),
      h('dt', {}, 'service'), h('dd', {}, h('a', { href: links.service(w.service) }, w.service), w.environment ? ` (${w.environment})` : ''),
      side(report.kind === 'canary' ? 'baseline' : 'before', w.before),
      side(report.kind === 'canary' ? 'canary' : 'after', w.after),
      report.status === 'ready' ? [h('dt', {}, 'computed'), h('dd', {}, fmtDateTime(report.computed_at_ms))] : null));
  el.replaceChildren(head);
  if (report.status === 'pending') return;
  if (!report.transactions.length) {
    el.append(h('p', { class: 'state empty' }, 'No transactions on either side: check the service, environment and range.'));
    return;
  }
  const table = h('table', { class: 'data report-transactions' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'transaction'), h('th', {}, 'verdict'),
      h('th', { class: 'num' }, 'count before → after'),
      h('th', { class: 'num' }, 'p50'), h('th', { class: 'num' }, 'p95'), h('th', { class: 'num' }, 'p99'),
      h('th', { class: 'num' }, 'error rate'), h('th', {}, 'reasons and suspects'))));
  const tbody = h('tbody');
  for (const t of report.transactions) {
    const q = (k) => h('td', { class: 'num' },
      `${fmtMs(t.before[`${k}_ms`])} → ${fmtMs(t.after[`${k}_ms`])}`, h('br'),
      h('span', { class: 'muted' }, fmtChange(t.change?.[`${k}_pct`])));
    const why = h('td', { class: 'wrap' },
      t.reasons?.length ? h('ul', { class: 'reasons' }, t.reasons.map((r) => h('li', {}, r))) : h('span', { class: 'muted' }, 'no reason to flag it'),
      t.suspects?.length ? h('div', { class: 'suspects' }, h('span', { class: 'muted' }, 'where the time went: '),
        t.suspects.map((s, i) => h('span', { class: 'suspect', dataset: { operation: s.operation } },
          i ? ', ' : '', h('strong', {}, s.operation), ` ${fmtMs(s.before_self_ms)} → ${fmtMs(s.after_self_ms)} per transaction`,
          s.share_of_added !== undefined && s.share_of_added !== null ? ` (${Math.round(s.share_of_added * 100)} % of the added time)` : ''))) : null);
    tbody.append(h('tr', { class: `report-row ${t.verdict}`, dataset: { transaction: t.transaction, verdict: t.verdict } },
      h('td', {}, h('a', { href: links.transaction(w.service, t.transaction) }, t.transaction)),
      h('td', {}, verdictBadge(t.verdict)),
      h('td', { class: 'num' }, `${fmtInt(t.before.count)} → ${fmtInt(t.after.count)}`),
      q('p50'), q('p95'), q('p99'),
      h('td', { class: 'num' }, `${fmtPct(t.before.error_rate)} → ${fmtPct(t.after.error_rate)}`),
      why));
  }
  table.append(tbody);
  el.append(table);
  if (options.overlay) {
    const img = h('img', { class: 'chart overlay', src: options.overlay, alt: 'before/after latency histograms', width: 900, height: 420 });
    const pick = h('select', { 'aria-label': 'transaction of the overlay', class: 'overlay-pick' },
      report.transactions.map((t) => h('option', { value: t.transaction }, t.transaction)));
    pick.addEventListener('change', () => { img.src = `${options.overlay}?transaction=${encodeURIComponent(pick.value)}`; });
    const holder = h('div', { class: 'overlay-holder' }, h('h2', { style: 'margin-top:1rem' }, 'Latency distribution before and after ', pick), img);
    img.addEventListener('error', () => holder.replaceChildren(h('p', { class: 'muted' }, 'The histogram overlay is not available from this collector.')));
    el.append(holder);
  }
}

/** #/deploy/{id}: the deploy's comparison, refreshed every 5 s while pending. */
export async function renderDeployPage(root, ctx, id, view) {
  ctx.crumbs(h('a', { href: '#/' }, 'services'), `deploy ${id}`);
  const title = h('h1', {}, 'Deploy');
  const card = h('section', { class: 'card report', id: 'report' });
  root.append(title, card);
  loading(card, 'the comparison');
  let deploy;
  try {
    deploy = await getJson(`/api/v1/deploys/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) card.replaceChildren(h('p', { class: 'state error' }, `There is no deploy ${id}: it may be past the rollup retention. `, h('a', { href: '#/' }, 'Pick a service'), ' to see its deploys.'));
    else failed(card, 'the deploy', e);
    return;
  }
  ctx.crumbs(h('a', { href: '#/' }, 'services'), h('a', { href: links.service(deploy.service) }, deploy.service), `deploy ${deploy.version}`);
  title.replaceChildren(`Deploy of ${deploy.service} ${deploy.version}`, h('span', { class: 'muted' }, ` (${deploy.environment}) at ${fmtDateTime(deploy.time_ms)}`));
  if (deploy.commit || deploy.description) {
    root.insertBefore(h('p', { class: 'muted' }, deploy.commit ? `commit ${deploy.commit}` : '', deploy.commit && deploy.description ? ' · ' : '', deploy.description || ''), card);
  }
  const load = async () => {
    let report;
    try {
      report = await getJson(`/api/v1/deploys/${encodeURIComponent(id)}/comparison`);
    } catch (e) {
      failed(card, 'the comparison', e);
      return;
    }
    if (view !== ctx.current) return;
    renderReport(card, report, { overlay: `/api/v1/deploys/${encodeURIComponent(id)}/comparison.svg` });
    if (report.status === 'pending') {
      const timer = setTimeout(load, 5000);
      ctx.onLeave(() => clearTimeout(timer));
    }
  };
  await load();
}

/** #/compare?service&…: a canary or period comparison from the form. */
export async function renderComparePage(root, ctx, query, view) {
  const params = Object.fromEntries(query);
  const service = params.service || '';
  const kind = params.canary_version ? 'canary' : 'period';
  ctx.crumbs(h('a', { href: '#/' }, 'services'), h('a', { href: links.service(service) }, service), `${kind} comparison`);
  const title = kind === 'canary'
    ? `Canary ${params.canary_version} against ${params.baseline_version}`
    : 'Period against period';
  const card = h('section', { class: 'card report', id: 'report' });
  root.append(h('h1', {}, `${service}: ${title}`), card);
  loading(card, 'the comparison');
  const load = async () => {
    try {
      const report = await getJson('/api/v1/compare', params);
      if (view !== ctx.current) return;
      renderReport(card, report, {});
      if (report.status === 'pending') {
        const timer = setTimeout(load, 5000);
        ctx.onLeave(() => clearTimeout(timer));
      }
    } catch (e) {
      failed(card, 'the comparison', e);
    }
  };
  await load();
}
