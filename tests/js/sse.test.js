// The usage stream's transport: the event-stream parser, and the reconnecting reader over a
// scripted fetch and a clock that records its waits instead of sleeping.
import assert from "node:assert/strict";
import { test } from "node:test";

import { openStream, readSse, SseParser } from "../../api/static/sse.js";

test("the parser yields complete messages with their event name and joined data", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("event: usage\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\ndata:x\n\n"), [
    { event: "usage", data: '{"a":\n1}' },
    { event: "message", data: "x" },
  ]);
});

test("a message split across chunks waits for its end", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("event: usage\nda"), []);
  assert.deepEqual(parser.push("ta: 1\n"), []);
  assert.deepEqual(parser.push("\n"), [{ event: "usage", data: "1" }]);
});

test("CRLF and CR line ends, even a CRLF split between two chunks", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("data: 1\r\n\r\ndata: 2\r\r"), [
    { event: "message", data: "1" },
    { event: "message", data: "2" },
  ]);
  // "data: 3\r" | "\n" is one line end, not two: no message yet.
  assert.deepEqual(parser.push("data: 3\r"), []);
  assert.deepEqual(parser.push("\n"), []);
  assert.deepEqual(parser.push("data: 4\r"), []);
  assert.deepEqual(parser.push("\ndata: 5\r\n\r\n"), [{ event: "message", data: "3\n4\n5" }]);
});

test("blocks without data and unknown fields yield nothing", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("event: usage\n\nid: 7\nretry: 10\n\n"), []);
  assert.deepEqual(parser.push("data\n\n"), [{ event: "message", data: "" }]);
});

function body(chunks, signal) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
      if (signal) signal.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
      else controller.close();
    },
  });
}

test("readSse decodes UTF-8 split inside a character", async () => {
  const bytes = new TextEncoder().encode("data: 결제\n\n");
  const messages = [];
  await readSse(body([bytes.slice(0, 8), bytes.slice(8)]), (event, data) => messages.push([event, data]));
  assert.deepEqual(messages, [["message", "결제"]]);
});

/** A stream over scripted answers; each answer is a Response, an Error to throw, or a function. */
function scripted(answers) {
  const log = { urls: [], headers: [], events: [], live: [], unavailable: 0, errors: [], waits: [], overrun: false };
  let next = 0;
  let stream = null;
  const fetchImpl = async (url, init) => {
    log.urls.push(url);
    log.headers.push(init.headers);
    const answer = answers[next++];
    if (answer === undefined) {
      // A stream that should have stopped asks again: end it so the test fails, not hangs.
      log.overrun = true;
      stream.close();
      throw new Error("no more answers scripted");
    }
    if (answer instanceof Error) throw answer;
    return typeof answer === "function" ? answer(init) : answer;
  };
  stream = openStream({
    url: "/v1/accounts/acme/usage/stream?window=none",
    token: "tok",
    onEvent: (event, json) => log.events.push([event, json]),
    onError: (error) => log.errors.push(error.status),
    onLive: (live) => log.live.push(live),
    onUnavailable: () => (log.unavailable += 1),
    fetchImpl,
    wait: async (ms) => log.waits.push(ms),
  });
  return { log, stream };
}

const sse = (chunks) => new Response(body(chunks), { status: 200, headers: { "content-type": "text/event-stream" } });
const refusal = (status) => new Response(JSON.stringify({ error: { code: "c", message: "m" } }), { status });

test("the stream delivers messages, reconnects after an end or a 5xx, and stops on 401", async () => {
  const { log, stream } = scripted([
    refusal(500),
    sse(["event: unavailable\ndata: {}\n\n", 'event: usage\ndata: {"total": {"credits": "1.5"}}\n\n']),
    refusal(401),
  ]);
  await stream.done;
  assert.equal(log.urls.length, 3);
  assert.ok(log.headers.every((headers) => headers.Authorization === "Bearer tok"));
  assert.deepEqual(log.events, [["usage", { total: { credits: "1.5" } }]]);
  assert.equal(log.unavailable, 1);
  assert.deepEqual(log.live, [false, false, true, false]);
  assert.deepEqual(log.waits, [500, 500]); // a message resets the backoff
  assert.deepEqual(log.errors, [401]);
  assert.equal(log.overrun, false);
});

test("failures back off from 0.5 s doubling to 10 s; a 503 says the view is rebuilding", async () => {
  const down = () => new TypeError("fetch failed");
  const { log, stream } = scripted([down(), refusal(503), down(), down(), down(), down(), refusal(403)]);
  await stream.done;
  assert.deepEqual(log.waits, [500, 1000, 2000, 4000, 8000, 10000]);
  assert.equal(log.unavailable, 1);
  assert.deepEqual(log.errors, [403]);
  assert.equal(log.overrun, false);
  assert.deepEqual(log.events, []);
});

test("close ends an open stream without a reconnect or another report", async () => {
  let opened;
  const connected = new Promise((resolve) => (opened = resolve));
  const { log, stream } = scripted([
    (init) => {
      opened();
      return new Response(body(["data: {\"n\": 1}\n\n"], init.signal), { status: 200 });
    },
  ]);
  await connected;
  while (log.events.length === 0) await new Promise((resolve) => setImmediate(resolve));
  stream.close();
  await stream.done;
  assert.deepEqual(log.events, [["message", { n: 1 }]]);
  assert.deepEqual(log.live, [true]);
  assert.equal(log.urls.length, 1);
  assert.deepEqual(log.waits, []);
  assert.deepEqual(log.errors, []);
});
