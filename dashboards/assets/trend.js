// Trend charts drawn as SVG from /api/v1/latency points: latency percentiles, throughput and
// error rate, with deploy markers as vertical lines.
import { fmtMsShort, fmtTick, timeStep, niceStep } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640; const H = 170;
const M = { left: 64, right: 10, top: 18, bottom: 22 };

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * A line chart.
 * @param {{title: string, from: number, to: number, lines: {label: string, color: string, points: [number, number|null][]}[], fmt: (v:number)=>string, deploys: object[]}} spec
 */
export function lineChart(spec) {
  const svg = s('svg', { class: 'trend', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  const pw = W - M.left - M.right; const ph = H - M.top - M.bottom;
  let max = 0;
  for (const l of spec.lines) for (const [, v] of l.points) if (v !== null && v > max) max = v;
  const step = niceStep((max || 1) / 4);
  const top = Math.max(step, Math.ceil((max || 1) / step) * step);
  const x = (t) => M.left + ((t - spec.from) / Math.max(1, spec.to - spec.from)) * pw;
  const y = (v) => M.top + ph - (v / top) * ph;
  svg.append(s('text', { x: M.left, y: 12, style: 'font-weight:600;fill:#1d2330' }, spec.title));
  let lx = M.left + 8 + spec.title.length * 6.5;
  for (const l of spec.lines) {
    svg.append(s('rect', { x: lx, y: 4, width: 10, height: 3, fill: l.color }));
    svg.append(s('text', { x: lx + 13, y: 12 }, l.label));
    lx += 22 + l.label.length * 6.5;
  }
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(s('line', { x1: M.left, x2: M.left + pw, y1: y(v), y2: y(v), stroke: '#eef0f4' }));
    svg.append(s('text', { x: M.left - 5, y: y(v) + 4, 'text-anchor': 'end' }, spec.fmt(v)));
  }
  const tstep = timeStep(spec.to - spec.from, 6);
  for (let t = Math.ceil(spec.from / tstep) * tstep; t <= spec.to; t += tstep) {
    svg.append(s('text', { x: x(t), y: H - 6, 'text-anchor': 'middle' }, fmtTick(t, tstep)));
  }
  svg.append(s('rect', { x: M.left, y: M.top, width: pw, height: ph, fill: 'none', stroke: '#c9ced8' }));
  for (const d of spec.deploys || []) {
    if (d.time_ms < spec.from || d.time_ms > spec.to) continue;
    svg.append(s('line', { x1: x(d.time_ms), x2: x(d.time_ms), y1: M.top, y2: M.top + ph, stroke: '#1f5fbf', 'stroke-dasharray': '4 3', class: 'deploy-marker' }));
    svg.append(s('text', { x: x(d.time_ms) + 3, y: M.top + 10, style: 'fill:#1f5fbf' }, d.version));
  }
  for (const l of spec.lines) {
    let path = '';
    let pen = false;
    for (const [t, v] of l.points) {
      if (v === null || v === undefined) { pen = false; continue; }
      path += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (path) svg.append(s('path', { d: path, fill: 'none', stroke: l.color, 'stroke-width': 1.6 }));
  }
  return svg;
}

/** The three trend charts of a latency response (points at the middle of each step). */
export function trendCharts(latency, deploys) {
  const mid = (p) => p.t + latency.step_ms / 2;
  const perMin = 60000 / latency.step_ms;
  const common = { from: latency.from, to: latency.to, deploys };
  return [
    lineChart({
      ...common, title: 'latency', fmt: fmtMsShort,
      lines: [
        { label: 'p50', color: '#5b8def', points: latency.points.map((p) => [mid(p), p.p50_ms]) },
        { label: 'p95', color: '#f08c00', points: latency.points.map((p) => [mid(p), p.p95_ms]) },
        { label: 'p99', color: '#c62828', points: latency.points.map((p) => [mid(p), p.p99_ms]) },
      ],
    }),
    lineChart({
      ...common, title: 'throughput', fmt: (v) => `${+v.toPrecision(3)}/min`,
      lines: [{ label: 'transactions/min', color: '#2e7d32', points: latency.points.map((p) => [mid(p), p.count * perMin]) }],
    }),
    lineChart({
      ...common, title: 'error rate', fmt: (v) => `${+(v * 100).toPrecision(3)}%`,
      lines: [{ label: 'errors', color: '#c62828', points: latency.points.map((p) => [mid(p), p.count ? p.errors / p.count : null]) }],
    }),
  ];
}
