// Exact decimal strings: display keeps the API's digits, order and shares never use a float.
import assert from "node:assert/strict";
import { test } from "node:test";

import { compareDecimal, formatDecimal, formatInt, formatMoney, isZero, sharePercent, toMicro } from "../../api/static/format.js";

test("formatDecimal regroups the whole part and keeps every fractional digit", () => {
  assert.equal(formatDecimal("1234567.5"), "1,234,567.5");
  assert.equal(formatDecimal("1000.000001"), "1,000.000001");
  assert.equal(formatDecimal("999"), "999");
  assert.equal(formatDecimal("-1234.50"), "-1,234.50");
  // Beyond float precision: the digits are the API's, not a double's.
  assert.equal(formatDecimal("123456789012345678.123456"), "123,456,789,012,345,678.123456");
  assert.equal(formatDecimal("n/a"), "n/a");
});

test("formatInt and formatMoney group like a decimal", () => {
  assert.equal(formatInt(1234567), "1,234,567");
  assert.equal(formatMoney("12345.012", "USD"), "12,345.012 USD");
});

test("toMicro is exact to the micro-credit and refuses what is not a credit amount", () => {
  assert.equal(toMicro("1.000001"), 1000001n);
  assert.equal(toMicro("0.1"), 100000n);
  assert.equal(toMicro("48"), 48000000n);
  assert.equal(toMicro("-0.5"), -500000n);
  assert.equal(toMicro("9007199254740993"), 9007199254740993000000n); // 2^53 + 1
  for (const bad of ["1e3", "1.0000001", "", "abc", "1,000", " 1"]) {
    assert.throws(() => toMicro(bad), TypeError, bad);
  }
});

test("compareDecimal orders exactly where floats tie", () => {
  assert.equal(compareDecimal("10", "9.999999"), 1);
  assert.equal(compareDecimal("1.5", "1.50"), 0);
  assert.equal(compareDecimal("0.000001", "0"), 1);
  // Both are 9007199254740992 as doubles.
  assert.equal(compareDecimal("9007199254740993", "9007199254740992"), 1);
  assert.equal(compareDecimal("-1", "0"), -1);
});

test("isZero recognises every spelling of zero and nothing else", () => {
  for (const zero of ["0", "0.0", "0.000000", "-0"]) assert.equal(isZero(zero), true, zero);
  for (const other of ["0.000001", "10", "1.0", "00.1"]) assert.equal(isZero(other), false, other);
});

test("sharePercent is exact and rounds half up", () => {
  assert.equal(sharePercent("1", "3", 2), "33.33");
  assert.equal(sharePercent("2", "3", 2), "66.67");
  assert.equal(sharePercent("1", "8", 2), "12.50");
  assert.equal(sharePercent("1", "8", 1), "12.5");
  assert.equal(sharePercent("1", "16", 2), "6.25");
  assert.equal(sharePercent("1", "16", 1), "6.3"); // 6.25 -> 6.3, half up
  assert.equal(sharePercent("0.000005", "1", 4), "0.0005"); // 0.0005 % exactly
  assert.equal(sharePercent("5", "5", 4), "100.0000");
  assert.equal(sharePercent("3", "3", 0), "100");
  assert.equal(sharePercent("0", "0", 2), "0.00");
  // A double rounds 1.005 down (1.00499999...); the exact share of 1.005 in 100 is 1.01 half up.
  assert.equal(sharePercent("1.005", "100", 2), "1.01");
  // Totals past 2^53 micro-credits keep their exact ratio.
  assert.equal(sharePercent("333333333.333333", "999999999.999999", 6), "33.333333");
});
