// A real EventSource (npm `eventsource` 4, the WHATWG EventSource for node) following a
// Sora2 stream, as a browser page would. Each thing it sees is one JSON line on stdout:
// {"type":"request","lastEventId":…} before each (re)connection, {"type":"response",…},
// {"type":"status","id":…,"data":…} per event, {"type":"error",…}; it exits once the
// EventSource has closed itself (a 204 or another final answer) or after `timeoutMs`.
//
// Usage: node eventsource_client.mjs '<json: {url, method?, headers?, body?, timeoutMs?}>'
// with EVENTSOURCE_MODULE=<path to the installed package's folder>.
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const folder = process.env.EVENTSOURCE_MODULE;
const manifest = JSON.parse(readFileSync(join(folder, "package.json"), "utf8"));
const entry = manifest.exports["."].import; // the ES module build
const { EventSource } = await import(pathToFileURL(join(folder, entry)).href);

const config = JSON.parse(process.argv[2]);
const log = (record) => process.stdout.write(JSON.stringify(record) + "\n");

const source = new EventSource(config.url, {
  fetch: async (input, init) => {
    log({ type: "request", lastEventId: init.headers["Last-Event-ID"] ?? null });
    const response = await fetch(input, {
      ...init,
      method: config.method ?? "GET",
      body: config.body ?? undefined,
      headers: { ...init.headers, ...(config.headers ?? {}) },
    });
    log({
      type: "response",
      status: response.status,
      replayed: response.headers.get("idempotent-replayed"),
    });
    return response;
  },
});
source.addEventListener("status", (event) => {
  log({ type: "status", id: event.lastEventId, data: JSON.parse(event.data) });
});
source.addEventListener("error", (event) => {
  log({ type: "error", code: event.code ?? null, message: event.message ?? null, state: source.readyState });
  if (source.readyState === source.CLOSED) process.exit(0);
});
setTimeout(() => {
  log({ type: "timeout" });
  source.close();
  process.exit(3);
}, config.timeoutMs ?? 60000);
