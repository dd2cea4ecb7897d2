// The per-app table's order and the CSV export of it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { appShare, ariaSort, DEFAULT_SORT, nextSort, sortApps } from "../../api/static/apps.js";
import { csvField, csvFileName, csvText, usageRows } from "../../api/static/csv.js";

const APPS = [
  { app_id: "search", calls: 3, credits: "9.999999" },
  { app_id: "bot", calls: 7, credits: "10" },
  { app_id: "alpha", calls: 3, credits: "10.000000" },
  { app_id: "tiny", calls: 1, credits: "0.000001" },
];
const ids = (rows) => rows.map((row) => row.app_id);

test("credits sort exactly (10 above 9.999999), ties by app id, the input untouched", () => {
  const before = ids(APPS);
  assert.deepEqual(ids(sortApps(APPS, DEFAULT_SORT)), ["alpha", "bot", "search", "tiny"]);
  assert.deepEqual(ids(sortApps(APPS, { key: "credits", dir: 1 })), ["tiny", "search", "alpha", "bot"]);
  assert.deepEqual(ids(sortApps(APPS, { key: "share", dir: -1 })), ["alpha", "bot", "search", "tiny"]);
  assert.deepEqual(ids(APPS), before);
});

test("calls and names sort too", () => {
  assert.deepEqual(ids(sortApps(APPS, { key: "calls", dir: -1 })), ["bot", "alpha", "search", "tiny"]);
  assert.deepEqual(ids(sortApps(APPS, { key: "app_id", dir: 1 })), ["alpha", "bot", "search", "tiny"]);
});

test("a click flips the column's order; a new column starts descending, names ascending", () => {
  assert.deepEqual(nextSort(DEFAULT_SORT, "credits"), { key: "credits", dir: 1 });
  assert.deepEqual(nextSort(DEFAULT_SORT, "calls"), { key: "calls", dir: -1 });
  assert.deepEqual(nextSort(DEFAULT_SORT, "app_id"), { key: "app_id", dir: 1 });
  assert.deepEqual(["app_id", "credits"].map((key) => ariaSort(DEFAULT_SORT, key)), ["none", "descending"]);
  assert.equal(ariaSort({ key: "calls", dir: 1 }, "calls"), "ascending");
});

test("an app's share is exact", () => {
  assert.equal(appShare(APPS[3], { credits: "30.000001" }, 4), "0.0000");
  assert.equal(appShare(APPS[1], { credits: "30" }, 1), "33.3");
});

test("CSV fields are quoted only when they must be", () => {
  assert.deepEqual(["plain", 'say "hi"', "a,b", "two\nlines", 12].map(csvField), ["plain", '"say ""hi"""', '"a,b"', '"two\nlines"', "12"]);
  assert.equal(csvText([["a", "b"], ["1", "2"]]), "a,b\r\n1,2\r\n");
});

test("the export is the table as shown, with the API's strings and total, never re-summed", () => {
  // The total is the answer's own string, "30.000001", exactly as the API spelled it.
  const answer = { total: { calls: 14, credits: "30.000001" }, apps: APPS };
  const rows = usageRows(answer, { key: "calls", dir: -1 });
  assert.deepEqual(rows, [
    ["app_id", "calls", "credits", "share_percent"],
    ["bot", 7, "10", "33.33"],
    ["alpha", 3, "10.000000", "33.33"],
    ["search", 3, "9.999999", "33.33"],
    ["tiny", 1, "0.000001", "0.00"],
    ["(total)", 14, "30.000001", "100.00"],
  ]);
  const empty = usageRows({ total: { calls: 0, credits: "0" } }, DEFAULT_SORT);
  assert.deepEqual(empty.at(-1), ["(total)", 0, "0", "0.00"]);
});

test("the file is named by account and the inclusive dates shown", () => {
  const range = { fromDate: "2025-03-01", toDate: "2025-03-08" };
  assert.equal(csvFileName("acme", range), "creditflow-acme-2025-03-01-to-2025-03-07.csv");
});
