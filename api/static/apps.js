// The per-app breakdown of a usage answer: its order and each app's share of the total.
import { compareDecimal, sharePercent } from "./format.js";

export const DEFAULT_SORT = { key: "credits", dir: -1 };

const COMPARE = {
  app_id: (a, b) => a.app_id.localeCompare(b.app_id),
  calls: (a, b) => a.calls - b.calls,
  credits: (a, b) => compareDecimal(a.credits, b.credits), // exact, "10" above "9.999999"
};
COMPARE.share = COMPARE.credits; // a share is credits over one common total

/** The apps in the table's order ({key, dir}: dir 1 ascending, -1 descending), ties by app id. */
export function sortApps(apps, sort) {
  const compare = COMPARE[sort.key];
  return [...apps].sort((a, b) => sort.dir * compare(a, b) || a.app_id.localeCompare(b.app_id));
}

/** The order after a click on a column: the same column flips, a new one starts descending (names ascending). */
export function nextSort(sort, key) {
  if (sort.key === key) return { key, dir: -sort.dir };
  return { key, dir: key === "app_id" ? 1 : -1 };
}

/** A column header's aria-sort for an order. */
export function ariaSort(sort, key) {
  if (key !== sort.key) return "none";
  return sort.dir > 0 ? "ascending" : "descending";
}

/** An app's share of the total credits as a percentage string with `digits` decimals. */
export function appShare(app, total, digits) {
  return sharePercent(app.credits, total.credits, digits);
}
