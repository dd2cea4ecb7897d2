// The chart's geometry and labels (drawing is left to the browser tests).
import assert from "node:assert/strict";
import { test } from "node:test";

import { axisLabel, layoutChart, niceCeiling, pointLabel, SIZE, tickLabel } from "../../api/static/chart.js";

const PLOT_H = SIZE.height - SIZE.top - SIZE.bottom;
const BASE = SIZE.top + PLOT_H;

const point = (start, credits) => ({ start, end: start, credits, calls: 1 });

test("niceCeiling rounds up to 1, 2, 2.5 or 5 times a power of ten", () => {
  assert.deepEqual([0, 0.3, 1, 1.2, 2.2, 3, 7, 48, 150.5, 1000].map(niceCeiling), [1, 0.5, 1, 2, 2.5, 5, 10, 50, 200, 1000]);
});

test("bars are proportional to credits against the ceiling; a zero window has no bar", () => {
  const { grid, bars } = layoutChart([point("2025-03-01", "0"), point("2025-03-02", "5"), point("2025-03-03", "10")], "day");
  assert.deepEqual(grid.map((line) => line.value), [0, 5, 10]);
  assert.deepEqual(grid.map((line) => line.y), [BASE, BASE - PLOT_H / 2, SIZE.top]);
  assert.deepEqual(bars.map((bar) => bar.height), [0, PLOT_H / 2, PLOT_H]);
  assert.ok(bars.every((bar) => bar.y + bar.height === BASE));
  // Each bar is centred in its third of the plot, 72 % of it wide.
  const slot = (SIZE.width - SIZE.left - SIZE.right) / 3;
  bars.forEach((bar, i) => {
    assert.ok(Math.abs(bar.x + bar.width / 2 - (SIZE.left + (i + 0.5) * slot)) < 1e-9, `bar ${i}`);
    assert.ok(Math.abs(bar.width - slot * 0.72) < 1e-9, `bar ${i}`);
  });
  assert.equal(bars[1].point.credits, "5"); // the answer's own string rides along for the labels
});

test("a tiny window beside a large one stays visible", () => {
  const { bars } = layoutChart([point("2025-03-01", "100000"), point("2025-03-02", "0.000001")], "day");
  assert.equal(bars[1].height, 1.5);
});

test("at most 8 x labels, evenly spaced, in the window's format", () => {
  const series = Array.from({ length: 24 }, (_, h) => point(`2025-03-01T${String(h).padStart(2, "0")}:00:00+09:00`, "1"));
  const { labels } = layoutChart(series, "hour");
  assert.deepEqual(labels.map((label) => label.text), ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]);
  assert.equal(layoutChart(series.slice(0, 5), "hour").labels.length, 5);
});

test("labels per window: hour, day, month", () => {
  const start = "2025-03-05T14:00:00+09:00";
  assert.deepEqual(["hour", "day", "month"].map((w) => tickLabel(start, w)), ["14:00", "03-05", "2025-03"]);
  assert.deepEqual(["hour", "day", "month"].map((w) => pointLabel(start, w)), ["03-05 14:00", "2025-03-05", "2025-03"]);
});

test("axis values are compact from 100,000, in the page's language", () => {
  assert.equal(axisLabel(1500, "en"), "1,500");
  assert.equal(axisLabel(2.5, "en"), "2.5");
  assert.equal(axisLabel(250000, "en"), "250K");
  assert.equal(axisLabel(250000, "ko"), "25만");
});
