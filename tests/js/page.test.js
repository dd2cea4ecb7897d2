// The pure parts of the page modules: labels, the language, load tickets, links, the usage bar.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as account from "../../api/static/account.js";
import { safeUrl, usageBar } from "../../api/static/billing.js";
import { lang, pickLang, setLang, STRINGS, t, translate } from "../../api/static/i18n.js";

test("every label exists in both languages and names the same values", () => {
  const marks = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  assert.deepEqual(Object.keys(STRINGS.ko).sort(), Object.keys(STRINGS.en).sort());
  for (const key of Object.keys(STRINGS.en)) assert.deepEqual(marks(STRINGS.ko[key]), marks(STRINGS.en[key]), key);
});

test("translate fills values in, falls back to English, then to the key", () => {
  assert.equal(translate("en", "syncedAgo", { n: 3 }), "synced 3 s ago");
  assert.equal(translate("ko", "syncedAgo", { n: 3 }), "3초 전 동기화");
  assert.equal(translate("fr", "billing"), "Billing");
  assert.equal(translate("en", "no-such-label"), "no-such-label");
  assert.equal(translate("en", "planName"), " plan");
});

test("the language: a saved choice, else the browser's; an unknown one is refused", () => {
  assert.equal(pickLang("ko", "en-US"), "ko");
  assert.equal(pickLang(null, "ko-KR"), "ko");
  assert.equal(pickLang("fr", "de-DE"), "en");
  setLang("ko");
  assert.equal(lang(), "ko");
  assert.equal(t("billing"), "결제");
  assert.throws(() => setLang("fr"), RangeError);
  assert.equal(lang(), "ko");
  setLang("en");
});

test("a load's ticket turns false once another account loads or the session ends", () => {
  const first = account.begin("acme");
  assert.equal(account.current(), "acme");
  assert.equal(first(), true);
  const second = account.begin("globex");
  assert.deepEqual([first(), second()], [false, true]);
  account.invalidate();
  assert.equal(second(), false);
  const seen = [];
  account.handleErrorsWith((error) => seen.push(error.status));
  account.fail({ status: 503 });
  assert.deepEqual(seen, [503]);
});

test("only http(s) and mailto links are followed", () => {
  const base = "http://127.0.0.1:8300/accounts/acme/billing";
  assert.equal(safeUrl("mailto:sales@creditflow.dev", base), "mailto:sales@creditflow.dev");
  assert.equal(safeUrl("https://example.com/upgrade", base), "https://example.com/upgrade");
  assert.equal(safeUrl("/pricing", base), "http://127.0.0.1:8300/pricing");
  for (const bad of ["javascript:alert(1)", "data:text/html,x", "", null, "http://[bad"]) {
    assert.equal(safeUrl(bad, base), null, String(bad));
  }
});

test("the usage bar: within the allotment, warning from 80 %, past it the allotment part first", () => {
  assert.deepEqual(usageBar("50", false), { within: 50, beyond: 0, warn: false });
  assert.deepEqual(usageBar("80", false), { within: 80, beyond: 0, warn: true });
  assert.deepEqual(usageBar("125", true), { within: 80, beyond: 20, warn: false });
  assert.deepEqual(usageBar(null, false), { within: 0, beyond: 0, warn: false });
});
