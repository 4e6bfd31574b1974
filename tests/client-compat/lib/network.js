// Instrumentation of the client's network traffic, without changing the client:
// - global fetch is wrapped to log every request/response (per client, via the
//   x-compat-client header the transport is configured to send) and to let a
//   scenario inject faults (lose a response, rewrite a query);
// - each client gets a WebSocket class (a subclass of `ws`) that records every
//   frame it sends and receives.
import fs from "node:fs";
import WebSocket from "ws";
import { truncate } from "./util.js";

export const CLIENT_HEADER = "x-compat-client";

const originalFetch = globalThis.fetch.bind(globalThis);

let logStream = null;
const rules = [];
const traffic = [];

export const rawFetch = (...args) => originalFetch(...args);

export const setTrafficLog = (file) => {
  logStream = fs.createWriteStream(file, { flags: "a" });
};

const log = (entry) => {
  traffic.push(entry);
  if (traffic.length > 5000) {
    traffic.splice(0, traffic.length - 5000);
  }
  logStream?.write(`${JSON.stringify(entry)}\n`);
};

/** Recent HTTP exchanges, optionally for one client and/or path. */
export const httpLog = ({ client, path } = {}) =>
  traffic.filter(
    (e) => e.kind === "http" && (!client || e.client === client) && (!path || e.path === path),
  );

const headerOf = (init, name) => {
  const headers = init?.headers;
  if (!headers) {
    return undefined;
  }
  if (typeof headers.get === "function") {
    return headers.get(name) ?? undefined;
  }
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) {
      return value;
    }
  }
  return undefined;
};

/**
 * Adds a one-shot (or n-shot) interception rule. `match({client, method, url})`
 * selects requests; `handle({url, init, forward})` returns a Response or throws.
 * `forward(url?)` performs the real request. Returns a handle whose `hits`
 * records what happened.
 */
export const intercept = ({ match, handle, times = 1 }) => {
  const rule = { handle, hits: [], match, remaining: times };
  rules.push(rule);
  return {
    get hits() {
      return rule.hits;
    },
    remove() {
      const i = rules.indexOf(rule);
      if (i >= 0) {
        rules.splice(i, 1);
      }
    },
  };
};

const readBodyForLog = async (response, entry) => {
  try {
    entry.resBody = truncate(await response.text(), 4000);
  } catch (error) {
    entry.resBody = `<unreadable: ${error}>`;
  }
  log(entry);
};

const instrumentedFetch = async (input, init = {}) => {
  const url = typeof input === "string" ? input : input.url;
  const client = headerOf(init, CLIENT_HEADER);
  const method = (init.method ?? "GET").toUpperCase();
  const started = Date.now();
  const forward = async (overrideUrl = url) => originalFetch(overrideUrl, init);

  let response;
  let effectiveUrl = url;
  const rule = client
    ? rules.find((r) => r.remaining > 0 && r.match({ client, method, url }))
    : undefined;
  const entry = {
    client,
    kind: "http",
    method,
    path: new URL(url).pathname,
    reqBody: typeof init.body === "string" ? truncate(init.body, 4000) : undefined,
    t: new Date(started).toISOString(),
    url,
  };
  try {
    if (rule) {
      rule.remaining -= 1;
      const hit = { url };
      rule.hits.push(hit);
      response = await rule.handle({
        forward: async (overrideUrl) => {
          effectiveUrl = overrideUrl ?? url;
          const real = await forward(effectiveUrl);
          hit.forwardedBody = await real.clone().text();
          hit.forwardedStatus = real.status;
          return real;
        },
        init,
        url,
      });
      entry.injected = true;
      entry.url = effectiveUrl;
    } else {
      response = await forward();
    }
  } catch (error) {
    entry.error = String(error?.message ?? error);
    entry.ms = Date.now() - started;
    log(entry);
    throw error;
  }
  entry.status = response.status;
  entry.ms = Date.now() - started;
  // Log the body without consuming the client's copy (streams are tee'd).
  readBodyForLog(response.clone(), entry);
  return response;
};

let installed = false;

/** Installs the fetch wrapper and the global WebSocket the transport needs on Node 20. */
export const installNetworkInstrumentation = () => {
  if (installed) {
    return;
  }
  installed = true;
  globalThis.fetch = instrumentedFetch;
  // The transport checks `socket.readyState === WebSocket.OPEN` on the global
  // even when given a factory, and Node 20 has no global WebSocket.
  globalThis.WebSocket ??= WebSocket;
};

/**
 * A WebSocket class for one client: every frame in and out is recorded in
 * `frames` (parsed JSON when possible) and logged.
 */
export const recordingWebSocket = (clientName, frames) =>
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      const record = (dir, raw) => {
        const text = typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const frame = { at: Date.now(), dir, json, text };
        frames.push(frame);
        log({
          client: clientName,
          dir,
          frame: truncate(text, 4000),
          kind: "ws",
          t: new Date().toISOString(),
        });
      };
      this.on("message", (data, isBinary) => record("in", isBinary ? data : data.toString("utf8")));
      this.on("open", () => {
        frames.push({ at: Date.now(), dir: "open" });
        log({ client: clientName, dir: "open", kind: "ws", t: new Date().toISOString(), url });
      });
      this.on("close", (code, reason) => {
        frames.push({ at: Date.now(), code, dir: "close", reason: String(reason) });
        log({
          client: clientName,
          code,
          dir: "close",
          kind: "ws",
          reason: String(reason),
          t: new Date().toISOString(),
        });
      });
      this.on("error", (error) => {
        log({ client: clientName, dir: "error", error: String(error), kind: "ws", t: new Date().toISOString() });
      });
      const originalSend = this.send.bind(this);
      this.send = (data, ...rest) => {
        record("out", data);
        return originalSend(data, ...rest);
      };
    }
  };
