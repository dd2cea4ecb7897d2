// Calendar dates, zones and ranges: half-open ranges whose shown end is the day before.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addDays,
  customRange,
  lastDay,
  localDate,
  nextMonth,
  periodRange,
  presetDays,
  rangeLabel,
  todayIn,
  validZone,
  windowFor,
} from "../../api/static/dates.js";

test("addDays crosses months, leap days and years", () => {
  assert.equal(addDays("2024-02-28", 1), "2024-02-29");
  assert.equal(addDays("2023-02-28", 1), "2023-03-01");
  assert.equal(addDays("2025-01-01", -1), "2024-12-31");
  assert.equal(addDays("2025-03-10", -29), "2025-02-09");
});

test("nextMonth is the first of the following month, from any day", () => {
  assert.equal(nextMonth("2025-01-31"), "2025-02-01");
  assert.equal(nextMonth("2025-12-15"), "2026-01-01");
});

test("todayIn and localDate read the calendar date in the zone, not in UTC", () => {
  const instant = new Date("2025-03-01T16:30:00Z");
  assert.equal(todayIn("UTC", instant), "2025-03-01");
  assert.equal(todayIn("Asia/Seoul", instant), "2025-03-02");
  assert.equal(todayIn("America/Los_Angeles", new Date("2025-03-01T07:00:00Z")), "2025-02-28");
  assert.equal(localDate("2025-03-01T16:30:00+00:00", "Asia/Seoul"), "2025-03-02");
  assert.equal(localDate("2025-03-01 sometime", "UTC"), "2025-03-01");
});

test("validZone accepts IANA names only", () => {
  assert.equal(validZone("Asia/Seoul"), true);
  assert.equal(validZone("UTC"), true);
  assert.equal(validZone("Mars/Olympus"), false);
});

test("windowFor: hours up to 3 days, days up to 400, months beyond", () => {
  assert.equal(windowFor("2025-03-01", "2025-03-04"), "hour");
  assert.equal(windowFor("2025-03-01", "2025-03-05"), "day");
  assert.equal(windowFor("2025-03-01T00:00:00+09:00", "2025-04-01T00:00:00+09:00"), "day");
  assert.equal(windowFor("2024-01-01", "2025-02-04"), "day"); // 400 days
  assert.equal(windowFor("2024-01-01", "2025-02-05"), "month");
});

test("presets cover the last 7 and 30 days including today, and this month", () => {
  assert.deepEqual(presetDays("last7", "2025-03-05"), { from: "2025-02-27", to: "2025-03-06" });
  assert.deepEqual(presetDays("last30", "2025-03-05"), { from: "2025-02-04", to: "2025-03-06" });
  assert.deepEqual(presetDays("month", "2025-12-31"), { from: "2025-12-01", to: "2026-01-01" });
  assert.equal(presetDays("current", "2025-03-05"), null);
});

test("a billing period's range keeps the API's instants and shows its dates", () => {
  const period = { start_at: "2025-03-03T00:00:00+09:00", end_at: "2025-04-03T00:00:00+09:00", start: "2025-03-03", end: "2025-04-03" };
  const range = periodRange(period);
  assert.deepEqual(range, { from: period.start_at, to: period.end_at, fromDate: "2025-03-03", toDate: "2025-04-03" });
  assert.equal(rangeLabel(range, "Asia/Seoul"), "2025-03-03 – 2025-04-02 (Asia/Seoul)");
});

test("the custom form's end date is inclusive; an end before the start is refused", () => {
  assert.deepEqual(customRange("2025-03-01", "2025-03-07"), {
    preset: "custom",
    from: "2025-03-01",
    to: "2025-03-08",
    fromDate: "2025-03-01",
    toDate: "2025-03-08",
  });
  assert.deepEqual(customRange("2025-03-01", "2025-03-01").to, "2025-03-02");
  assert.equal(customRange("2025-03-02", "2025-03-01"), null);
  assert.equal(customRange("", "2025-03-01"), null);
  assert.equal(lastDay("2025-03-08T00:00:00+09:00"), "2025-03-07");
});
