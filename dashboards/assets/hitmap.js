// The hitmap: transactions by end time (x) and duration (y, log scale) drawn on a canvas from
// /api/v1/heatmap; dragging a rectangle selects whole cells and reports their time and
// duration bounds.
import { h, fmtMs, fmtMsShort, fmtTime, fmtTick, timeStep, fmtInt } from './format.js';

const M = { left: 62, right: 12, top: 10, bottom: 26 };
const HEIGHT = 320;

export class Hitmap {
  /**
   * @param {HTMLElement} container
   * @param {{onSelect: (sel) => void}} options
   */
  constructor(container, options) {
    this.options = options;
    this.canvas = h('canvas', { height: HEIGHT, 'aria-label': 'hitmap: transactions by end time and duration' });
    this.sel = h('div', { class: 'hitmap-sel' });
    this.tip = h('div', { class: 'hitmap-tip' });
    this.wrap = h('div', { class: 'hitmap-wrap' }, this.canvas, this.sel, this.tip);
    container.append(this.wrap);
    this.data = null;
    this.deploys = [];
    this.selection = null; // {i0, i1, j0, j1} by value: {from, to, min_ms, max_ms}
    this.drag = null;
    this.canvas.addEventListener('pointerdown', (e) => this.down(e));
    this.canvas.addEventListener('pointermove', (e) => this.move(e));
    this.canvas.addEventListener('pointerup', (e) => this.up(e));
    this.canvas.addEventListener('pointerleave', () => { this.tip.style.display = 'none'; });
    this.resize = () => this.draw();
    window.addEventListener('resize', this.resize);
  }

  destroy() { window.removeEventListener('resize', this.resize); }

  /** Sets the heatmap response and redraws; a selection is kept by its time/duration bounds. */
  setData(data, deploys) {
    this.data = data;
    this.deploys = deploys || [];
    this.draw();
  }

  get plot() {
    const w = this.canvas.clientWidth || this.wrap.clientWidth || 800;
    return { x: M.left, y: M.top, w: w - M.left - M.right, h: HEIGHT - M.top - M.bottom, width: w };
  }

  /** Pixel (CSS px, relative to the canvas) of time `t` (unix ms). */
  xOf(t) {
    const d = this.data; const p = this.plot;
    const from = d.x.length ? d.x[0] : 0;
    const to = d.x.length ? d.x[d.x.length - 1] + d.x_step_ms : 1;
    return p.x + ((t - from) / (to - from)) * p.w;
  }

  /** Pixel of duration `ms` (log scale when every edge is positive). */
  yOf(ms) {
    const e = this.data.y_edges_ms; const p = this.plot;
    const lo = e[0]; const hi = e[e.length - 1];
    const log = lo > 0;
    const f = log ? (Math.log(ms) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (ms - lo) / (hi - lo);
    return p.y + p.h - f * p.h;
  }

  /** The cell (column i, row j) under a pixel, clamped to the grid. */
  cellAt(px, py) {
    const d = this.data;
    const nx = d.x.length; const ny = d.y_edges_ms.length - 1;
    let i = 0;
    while (i < nx - 1 && this.xOf(d.x[i] + d.x_step_ms) <= px) i++;
    let j = 0;
    while (j < ny - 1 && this.yOf(d.y_edges_ms[j + 1]) >= py) j++;
    return { i, j };
  }

  draw() {
    const d = this.data;
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const p = this.plot;
    c.width = Math.round(p.width * dpr);
    c.height = Math.round(HEIGHT * dpr);
    c.style.height = `${HEIGHT}px`;
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, p.width, HEIGHT);
    g.fillStyle = '#fff';
    g.fillRect(p.x, p.y, p.w, p.h);
    if (!d || !d.x.length || d.y_edges_ms.length < 2) {
      this.placeSelection();
      return;
    }
    let max = 0;
    for (const col of d.counts) for (const n of col) max = Math.max(max, n);
    const e = d.y_edges_ms;
    for (let i = 0; i < d.x.length; i++) {
      const x0 = this.xOf(d.x[i]); const x1 = this.xOf(d.x[i] + d.x_step_ms);
      for (let j = 0; j < e.length - 1; j++) {
        const n = d.counts[i][j];
        if (!n) continue;
        const errors = d.errors?.[i]?.[j] || 0;
        const y0 = this.yOf(e[j + 1]); const y1 = this.yOf(e[j]);
        g.fillStyle = cellColor(n, max, errors / n);
        g.fillRect(x0, y0, Math.max(1, x1 - x0 - 0.5), Math.max(1, y1 - y0 - 0.5));
      }
    }
    // Axes: durations at powers of ten (and 2×, 5× when few), times at round steps.
    g.strokeStyle = '#c9ced8'; g.fillStyle = '#667085'; g.font = '11px system-ui, sans-serif';
    g.strokeRect(p.x, p.y, p.w, p.h);
    g.textAlign = 'right'; g.textBaseline = 'middle';
    const lo = e[0]; const hi = e[e.length - 1];
    const ticks = [];
    if (lo > 0) {
      for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
        for (const m of hi / lo < 1000 ? [1, 2, 5] : [1]) {
          const v = m * 10 ** k;
          if (v >= lo && v <= hi) ticks.push(v);
        }
      }
    } else {
      for (let k = 0; k <= 5; k++) ticks.push(lo + ((hi - lo) * k) / 5);
    }
    for (const v of ticks) {
      const y = this.yOf(v);
      g.fillText(fmtMsShort(v), p.x - 6, y);
      g.beginPath(); g.moveTo(p.x - 3, y); g.lineTo(p.x, y); g.stroke();
    }
    g.textAlign = 'center'; g.textBaseline = 'top';
    const from = d.x[0]; const to = d.x[d.x.length - 1] + d.x_step_ms;
    const step = timeStep(to - from, Math.max(2, Math.floor(p.w / 90)));
    for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
      const x = this.xOf(t);
      g.fillText(fmtTick(t, step), x, p.y + p.h + 6);
      g.beginPath(); g.moveTo(x, p.y + p.h); g.lineTo(x, p.y + p.h + 3); g.stroke();
    }
    // Deploy markers.
    for (const dep of this.deploys) {
      if (dep.time_ms < from || dep.time_ms > to) continue;
      const x = this.xOf(dep.time_ms);
      g.save();
      g.strokeStyle = dep.automatic ? '#8aa4cc' : '#1f5fbf'; g.setLineDash([4, 3]); g.lineWidth = 1.5;
      g.beginPath(); g.moveTo(x, p.y); g.lineTo(x, p.y + p.h); g.stroke();
      g.restore();
      g.fillStyle = '#1f5fbf'; g.textAlign = 'left';
      g.fillText(dep.version, x + 3, p.y + 2);
    }
    this.placeSelection();
  }

  local(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  down(e) {
    if (!this.data || !this.data.x.length || e.button !== 0) return;
    this.canvas.setPointerCapture?.(e.pointerId);
    const at = this.local(e);
    this.drag = { x0: at.x, y0: at.y, x1: at.x, y1: at.y };
    this.tip.style.display = 'none';
    e.preventDefault();
  }

  move(e) {
    if (!this.data || !this.data.x.length) return;
    const at = this.local(e);
    if (this.drag) {
      this.drag.x1 = at.x; this.drag.y1 = at.y;
      this.selection = this.cellsOf(this.drag);
      this.placeSelection();
      return;
    }
    const p = this.plot;
    if (at.x < p.x || at.x > p.x + p.w || at.y < p.y || at.y > p.y + p.h) {
      this.tip.style.display = 'none';
      return;
    }
    const { i, j } = this.cellAt(at.x, at.y);
    const d = this.data;
    const n = d.counts[i][j]; const errors = d.errors?.[i]?.[j] || 0;
    this.tip.textContent = `${fmtTime(d.x[i])}–${fmtTime(d.x[i] + d.x_step_ms)} · ${fmtMs(d.y_edges_ms[j])}–${fmtMs(d.y_edges_ms[j + 1])} · ${fmtInt(n)} transactions${errors ? `, ${errors} errors` : ''}`;
    this.tip.style.display = 'block';
    this.tip.style.left = `${Math.min(at.x + 12, p.width - 260)}px`;
    this.tip.style.top = `${at.y + 14}px`;
  }

  up(e) {
    if (!this.drag) return;
    const at = this.local(e);
    this.drag.x1 = at.x; this.drag.y1 = at.y;
    this.selection = this.cellsOf(this.drag);
    this.drag = null;
    this.placeSelection();
    this.options.onSelect?.(this.selection);
  }

  /** The whole cells under a dragged rectangle, as time/duration bounds and their counts. */
  cellsOf(r) {
    const d = this.data;
    const a = this.cellAt(Math.min(r.x0, r.x1), Math.max(r.y0, r.y1));
    const b = this.cellAt(Math.max(r.x0, r.x1), Math.min(r.y0, r.y1));
    const sel = {
      from: d.x[a.i], to: d.x[b.i] + d.x_step_ms,
      min_ms: d.y_edges_ms[a.j], max_ms: d.y_edges_ms[b.j + 1],
    };
    return this.withCounts(sel);
  }

  /** Adds to a selection the count and errors of the cells inside it in the current data. */
  withCounts(sel) {
    const d = this.data;
    let count = 0; let errors = 0;
    for (let i = 0; i < d.x.length; i++) {
      if (d.x[i] < sel.from || d.x[i] + d.x_step_ms > sel.to) continue;
      for (let j = 0; j < d.y_edges_ms.length - 1; j++) {
        if (d.y_edges_ms[j] < sel.min_ms - 1e-9 || d.y_edges_ms[j + 1] > sel.max_ms + 1e-9) continue;
        count += d.counts[i][j];
        errors += d.errors?.[i]?.[j] || 0;
      }
    }
    return { from: sel.from, to: sel.to, min_ms: sel.min_ms, max_ms: sel.max_ms, count, errors };
  }

  placeSelection() {
    const s = this.selection;
    if (!s || !this.data || !this.data.x.length) {
      this.sel.style.display = 'none';
      return;
    }
    const p = this.plot;
    const x0 = Math.max(p.x, this.xOf(s.from)); const x1 = Math.min(p.x + p.w, this.xOf(s.to));
    const y0 = Math.max(p.y, this.yOf(s.max_ms)); const y1 = Math.min(p.y + p.h, this.yOf(s.min_ms));
    if (x1 <= x0 || y1 <= y0) {
      this.sel.style.display = 'none';
      return;
    }
    Object.assign(this.sel.style, { display: 'block', left: `${x0}px`, top: `${y0}px`, width: `${x1 - x0}px`, height: `${y1 - y0}px` });
  }
}

/** A cell's colour: light to dark blue by log count, towards red by error share. */
function cellColor(n, max, errorShare) {
  const t = max <= 1 ? 1 : Math.log1p(n) / Math.log1p(max);
  const mix = (a, b, f) => a + (b - a) * f;
  let r = mix(190, 12, t); let g = mix(214, 48, t); let b = mix(250, 120, t);
  if (errorShare > 0) {
    const f = Math.min(1, 0.35 + errorShare);
    r = mix(r, 229, f); g = mix(g, 57, f); b = mix(b, 53, f);
  }
  return `rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})`;
}

/** The legend under the hitmap. */
export function legend() {
  return h('div', { class: 'legend' },
    h('span', {}, h('span', { class: 'swatch', style: 'background:rgb(190,214,250)' }), 'few'),
    h('span', {}, h('span', { class: 'swatch', style: 'background:rgb(12,48,120)' }), 'many transactions'),
    h('span', {}, h('span', { class: 'swatch', style: 'background:rgb(229,57,53)' }), 'with errors'),
    h('span', {}, 'x: end time · y: duration (log) · drag a rectangle to list the transactions inside it'));
}

/** The column width (s) for about 120 columns over `rangeS`; ≥ 10 s, ≥ 60 s past a day. */
export function xStep(rangeS) {
  const steps = [10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  const min = rangeS > 86400 ? 60 : 10;
  return steps.find((s) => s >= min && rangeS / s <= 120) || 7200;
}
