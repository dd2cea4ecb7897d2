// The usage chart: a hand-rolled SVG bar chart of a usage answer's series. layoutChart is the
// geometry (pure, tested under node); renderChart draws it. Credits become floats here only
// for bar heights: every text the chart shows comes from the answer's decimal strings.
import { formatDecimal, formatInt } from "./format.js";
import { lang, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
export const SIZE = { width: 880, height: 240, left: 60, right: 12, top: 12, bottom: 30 };
const MAX_LABELS = 8;
const MIN_BAR = 1.5; // a window with any usage stays visible beside a large one

/** The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (1 for nothing). */
export function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** An axis value in the page's language, compact from 100,000 ("120K", "12만"). */
export function axisLabel(value, language = lang()) {
  return new Intl.NumberFormat(language === "ko" ? "ko-KR" : "en-US", {
    notation: value >= 100000 ? "compact" : "standard",
    maximumFractionDigits: 2,
  }).format(value);
}

/** A window's start as its tooltip names it: "2025-03" per month, "03-05 14:00" per hour. */
export function pointLabel(start, window) {
  if (window === "month") return start.slice(0, 7);
  if (window === "hour") return `${start.slice(5, 10)} ${start.slice(11, 16)}`;
  return start.slice(0, 10);
}

/** A window's start under the x axis: "14:00" per hour, "03-05" per day, "2025-03" per month. */
export function tickLabel(start, window) {
  if (window === "hour") return start.slice(11, 16);
  return window === "month" ? start.slice(0, 7) : start.slice(5, 10);
}

/** The chart's geometry: grid lines, one bar per window, an x label every few bars. */
export function layoutChart(series, window) {
  const { width, height, left, right, top, bottom } = SIZE;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = series.map((point) => Number(point.credits)); // geometry only
  const ceiling = niceCeiling(Math.max(0, ...values));
  const grid = [0, 0.5, 1].map((fraction) => ({ y: top + plotH - fraction * plotH, value: ceiling * fraction }));
  const n = Math.max(1, series.length);
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.72);
  const every = Math.ceil(n / MAX_LABELS);
  const bars = [];
  const labels = [];
  series.forEach((point, i) => {
    const h = (values[i] / ceiling) * plotH;
    const shown = values[i] > 0 ? Math.max(h, MIN_BAR) : 0;
    const x = left + i * slot + (slot - barW) / 2;
    bars.push({ point, x, y: top + plotH - shown, width: barW, height: shown, rx: Math.min(3, barW / 4) });
    if (i % every === 0) labels.push({ x: x + barW / 2, text: tickLabel(point.start, window) });
  });
  return { grid, bars, labels };
}

function svg(name, attrs = {}, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Draw a series into the <svg> element (empty: nothing at all, the page says so instead). */
export function renderChart(chart, series, window, empty) {
  chart.replaceChildren();
  if (empty) return;
  const { width, height, left, right } = SIZE;
  const layout = layoutChart(series, window);
  const grid = svg("g", { class: "grid" });
  for (const { y, value } of layout.grid) {
    grid.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y }));
    grid.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, axisLabel(value)));
  }
  const bars = svg("g", { class: "bars" });
  for (const bar of layout.bars) {
    const { point } = bar;
    const rect = svg("rect", {
      class: "bar",
      x: bar.x.toFixed(2),
      y: bar.y.toFixed(2),
      width: bar.width.toFixed(2),
      height: bar.height.toFixed(2),
      rx: bar.rx.toFixed(2),
      "data-start": point.start,
      "data-end": point.end,
      "data-credits": point.credits,
      "data-calls": point.calls,
    });
    const title = `${pointLabel(point.start, window)}: ${formatDecimal(point.credits)} ${t("credits")} · ${formatInt(point.calls)} ${t("colCalls")}`;
    rect.append(svg("title", {}, title));
    bars.append(rect);
  }
  const labels = svg("g", { class: "labels" });
  for (const { x, text } of layout.labels) {
    labels.append(svg("text", { x: x.toFixed(2), y: height - 10, "text-anchor": "middle" }, text));
  }
  chart.append(grid, bars, labels);
}
