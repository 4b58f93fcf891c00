// Small helpers: building elements, formatting numbers and times.

/** Creates an element: h('td', {class: 'num', dataset: {value: 3}}, 'text', child…). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.style.cssText = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** A duration in ms as "850 µs", "12.3 ms", "1.24 s". */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms === 0) return '0';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

/** A short axis label for a duration in ms. */
export function fmtMsShort(ms) {
  if (ms === 0) return '0';
  if (ms < 1) return `${+(ms * 1000).toPrecision(2)}µs`;
  if (ms < 1000) return `${+ms.toPrecision(3)}ms`;
  return `${+(ms / 1000).toPrecision(3)}s`;
}

/** A ratio (0..1) as a percentage. */
export function fmtPct(ratio, digits = 2) {
  if (ratio === null || ratio === undefined) return '–';
  return `${(ratio * 100).toFixed(digits)} %`;
}

/** A signed percentage change. */
export function fmtChange(pct) {
  if (pct === null || pct === undefined) return '–';
  return `${pct > 0 ? '+' : ''}${pct.toFixed(1)} %`;
}

/** A plain number with thousands separators. */
export function fmtInt(n) {
  if (n === null || n === undefined) return '–';
  return Math.round(n).toLocaleString('en-US');
}

/** A rate per minute. */
export function fmtRate(perMin) {
  if (perMin === null || perMin === undefined) return '–';
  if (perMin >= 100) return `${Math.round(perMin).toLocaleString('en-US')}/min`;
  return `${perMin.toPrecision(3)}/min`;
}

const pad = (n) => String(n).padStart(2, '0');

/** Unix ms as local "HH:MM:SS". */
export function fmtTime(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Unix ms as local "YYYY-MM-DD HH:MM:SS". */
export function fmtDateTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(ms)}`;
}

/** Unix ms as the value of an <input type="datetime-local">. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A "nice" tick step near `raw`: 1, 2 or 5 × a power of ten. */
export function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Time tick step (ms) for about `n` ticks over `spanMs`. */
export function timeStep(spanMs, n) {
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);
  return steps.find((s) => spanMs / s <= n) || 86400000 * Math.ceil(spanMs / n / 86400000);
}

/** Time tick label: HH:MM, or the date when the step is a day or more. */
export function fmtTick(ms, stepMs) {
  const d = new Date(ms);
  if (stepMs >= 86400000) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (stepMs < 60000) return fmtTime(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Links used across views. */
export const links = {
  service: (s) => `#/service/${encodeURIComponent(s)}`,
  transaction: (s, t) => `#/service/${encodeURIComponent(s)}/transaction/${encodeURIComponent(t)}`,
  trace: (id) => `#/trace/${id}`,
  deploy: (id) => `#/deploy/${encodeURIComponent(id)}`,
};
