// Line charts for the bench's results (latency against rate, memory over time): an SVG string built
// here (panels side by side, axes with 1-2-5 ticks, linear or log, a legend under each panel,
// shaded regions and bands), rasterised to PNG by @resvg/resvg-js (Rust's resvg, prebuilt, no
// browser or canvas). Text uses DejaVu Sans when the system has it, else resvg's default font.
import { writeFileSync } from "node:fs";
import { Resvg } from "@resvg/resvg-js";

export interface Point {
  x: number;
  y: number;
  /** Drawn as a hollow marker (e.g. a run in which the server did not keep up). */
  hollow?: boolean;
}

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  /** Markers at the points (default true). */
  markers?: boolean;
  points: Point[];
}

export interface Axis {
  label: string;
  log?: boolean;
  /** Forced ends of the scale; otherwise the data's, widened to ticks. */
  min?: number;
  max?: number;
}

/** A shaded horizontal band (e.g. ±10 % around a mean), from x0 (default: the left edge) to the right edge. */
export interface Band {
  y0: number;
  y1: number;
  color: string;
  x0?: number;
}

/** A shaded vertical region (e.g. the warm-up). */
export interface Region {
  x0: number;
  x1: number;
  color: string;
  label: string;
}

export interface Panel {
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
  bands?: Band[];
  regions?: Region[];
}

export interface Chart {
  title: string;
  subtitle?: string;
  panels: Panel[];
  /** Lines of small print under the panels. */
  notes?: string[];
}

const PANEL_W = 560;
const PLOT = { left: 70, right: 20, top: 36, height: 300 };
const LEGEND_ROW = 18;
const FONT = "DejaVu Sans, Arial, Helvetica, sans-serif";

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** 1, 2 or 5 times a power of ten: the nearest at or below (down) or at or above `v`. */
function nice125(v: number, up: boolean): number {
  const p = 10 ** Math.floor(Math.log10(v));
  const steps = [1, 2, 5, 10];
  if (up) return p * (steps.find((s) => s * p >= v * (1 - 1e-9)) ?? 10);
  return p * ([...steps].reverse().find((s) => s * p <= v * (1 + 1e-9)) ?? 1);
}

export function formatTick(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return String(Number(v.toPrecision(3)));
}

interface Scale {
  lo: number;
  hi: number;
  ticks: number[];
  at: (v: number) => number;
}

function scale(axis: Axis, values: number[], from: number, to: number): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (!axis.log || v > 0));
  let lo = axis.min ?? (finite.length > 0 ? Math.min(...finite) : axis.log ? 1 : 0);
  let hi = axis.max ?? (finite.length > 0 ? Math.max(...finite) : lo + 1);
  if (hi <= lo) hi = axis.log ? lo * 10 : lo + 1;
  let ticks: number[];
  if (axis.log) {
    lo = axis.min ?? nice125(lo, false);
    hi = axis.max ?? nice125(hi, true);
    const all: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) all.push(m * 10 ** e);
    ticks = all.filter((t) => t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9));
    // Many decades: the powers of ten only.
    if (ticks.length > 10) ticks = ticks.filter((t) => Number.isInteger(Math.log10(t)) || Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9);
    const [l, h] = [Math.log10(lo), Math.log10(hi)];
    return { lo, hi, ticks, at: (v) => from + ((Math.log10(v) - l) / (h - l)) * (to - from) };
  }
  const step = nice125((hi - lo) / 5, true);
  lo = axis.min ?? Math.floor(lo / step) * step;
  hi = axis.max ?? Math.ceil(hi / step) * step;
  ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return { lo, hi, ticks, at: (v) => from + ((v - lo) / (hi - lo)) * (to - from) };
}

function legendRows(p: Panel): number {
  return Math.ceil(p.series.length / 2) + (p.regions?.length ? 1 : 0);
}

function panelSvg(p: Panel, ox: number, oy: number): string {
  const out: string[] = [];
  const x0 = ox + PLOT.left;
  const x1 = ox + PANEL_W - PLOT.right;
  const y0 = oy + PLOT.top + PLOT.height;
  const y1 = oy + PLOT.top;
  const points = p.series.flatMap((s) => s.points);
  const xs = scale(p.x, points.map((pt) => pt.x).concat((p.regions ?? []).flatMap((r) => [r.x0, r.x1])), x0, x1);
  const ys = scale(p.y, points.map((pt) => pt.y).concat((p.bands ?? []).flatMap((b) => [b.y0, b.y1])), y0, y1);
  const clampY = (v: number) => Math.min(y0, Math.max(y1, ys.at(v)));
  out.push(`<text x="${(x0 + x1) / 2}" y="${oy + 20}" text-anchor="middle" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
  for (const r of p.regions ?? []) {
    const a = xs.at(Math.max(r.x0, xs.lo));
    const b = xs.at(Math.min(r.x1, xs.hi));
    out.push(`<rect x="${a}" y="${y1}" width="${Math.max(0, b - a)}" height="${y0 - y1}" fill="${r.color}"/>`);
  }
  for (const b of p.bands ?? []) {
    const a = clampY(b.y1);
    const left = b.x0 === undefined ? x0 : xs.at(Math.max(b.x0, xs.lo));
    out.push(`<rect x="${left}" y="${a}" width="${Math.max(0, x1 - left)}" height="${Math.max(0, clampY(b.y0) - a)}" fill="${b.color}"/>`);
  }
  for (const t of ys.ticks) {
    const y = ys.at(t);
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11">${formatTick(t)}</text>`);
  }
  for (const t of xs.ticks) {
    const x = xs.at(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${y1}" y2="${y0}" stroke="#eeeeee"/>`);
    out.push(`<text x="${x}" y="${y0 + 16}" text-anchor="middle" font-size="11">${formatTick(t)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 34}" text-anchor="middle" font-size="12">${esc(p.x.label + (p.x.log ? " (log scale)" : ""))}</text>`);
  const ym = (y0 + y1) / 2;
  out.push(`<text x="${ox + 16}" y="${ym}" text-anchor="middle" font-size="12" transform="rotate(-90 ${ox + 16} ${ym})">${esc(p.y.label + (p.y.log ? " (log scale)" : ""))}</text>`);
  for (const s of p.series) {
    const drawable = (pt: Point) => Number.isFinite(pt.x) && Number.isFinite(pt.y) && (!p.y.log || pt.y > 0) && (!p.x.log || pt.x > 0);
    const pts = s.points.filter(drawable);
    if (pts.length === 0) continue;
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    // A point without a value (e.g. no request answered) breaks the line rather than being bridged.
    let move = true;
    const path = s.points
      .map((pt) => {
        if (!drawable(pt)) {
          move = true;
          return "";
        }
        const cmd = move ? "M" : "L";
        move = false;
        return `${cmd}${xs.at(pt.x).toFixed(1)},${clampY(pt.y).toFixed(1)}`;
      })
      .filter((c) => c !== "")
      .join(" ");
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    if (s.markers === false) continue;
    for (const pt of pts) {
      const fill = pt.hollow ? "white" : s.color;
      out.push(`<circle cx="${xs.at(pt.x).toFixed(1)}" cy="${clampY(pt.y).toFixed(1)}" r="3.5" fill="${fill}" stroke="${s.color}" stroke-width="1.5"/>`);
    }
  }
  // Legend: two columns under the plot, filled column by column (the first half of the series left).
  const ly = y0 + 52;
  const colW = (x1 - x0) / 2;
  const rows = Math.ceil(p.series.length / 2);
  p.series.forEach((s, i) => {
    const lx = x0 + Math.floor(i / rows) * colW;
    const y = ly + (i % rows) * LEGEND_ROW;
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    out.push(`<line x1="${lx}" x2="${lx + 26}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 32}" y="${y + 4}" font-size="11">${esc(s.name)}</text>`);
  });
  (p.regions ?? []).forEach((r, i) => {
    const y = ly + Math.ceil(p.series.length / 2) * LEGEND_ROW;
    const lx = x0 + i * colW;
    out.push(`<rect x="${lx}" y="${y - 6}" width="26" height="12" fill="${r.color}" stroke="#bbb"/>`);
    out.push(`<text x="${lx + 32}" y="${y + 4}" font-size="11">${esc(r.label)}</text>`);
  });
  return out.join("\n");
}

/** Words into lines of at most `chars` characters (the notes' font is ~6.3 px a character). */
function wrap(text: string, chars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > chars) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

export function chartSvg(chart: Chart): string {
  const head = chart.subtitle === undefined ? 40 : 58;
  const panelH = PLOT.top + PLOT.height + 52 + Math.max(...chart.panels.map(legendRows)) * LEGEND_ROW;
  const width = PANEL_W * chart.panels.length;
  const notes = (chart.notes ?? []).flatMap((n) => wrap(n, Math.floor((width - 24) / 6.3)));
  const height = head + panelH + notes.length * 16 + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold">${esc(chart.title)}</text>`,
  ];
  if (chart.subtitle !== undefined) out.push(`<text x="${width / 2}" y="46" text-anchor="middle" font-size="12" fill="#444">${esc(chart.subtitle)}</text>`);
  chart.panels.forEach((p, i) => out.push(panelSvg(p, i * PANEL_W, head)));
  notes.forEach((n, i) => out.push(`<text x="12" y="${head + panelH + 12 + i * 16}" font-size="11" fill="#444">${esc(n)}</text>`));
  out.push("</svg>");
  return out.join("\n");
}

/** Renders the chart to a PNG file at twice its SVG size. */
export function writeChartPng(chart: Chart, file: string): void {
  const png = new Resvg(chartSvg(chart), { fitTo: { mode: "zoom", value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } }).render().asPng();
  writeFileSync(file, png);
}
