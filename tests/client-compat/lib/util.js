// Small helpers shared by the harness and the scenarios.
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";

export const DAY_MS = 86_400_000;

/** Namespace of composite sync ids (PROTOCOL.md §3). */
export const COMPOSITE_ID_NAMESPACE = "92a73695-d772-4b43-9fb4-d79f5fbef300";

/** RFC 4122 UUID version 5 of `name` in `namespace`. */
export const uuidv5 = (name, namespace) => {
  const hash = createHash("sha1")
    .update(Buffer.from(namespace.replaceAll("-", ""), "hex"))
    .update(Buffer.from(name, "utf8"))
    .digest();
  const b = Buffer.from(hash.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = b.toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
};

/** Canonical id of a composite (join-table) row: `<Model>:<JSON array of parts>`. */
export const compositeId = (modelName, parts) =>
  uuidv5(`${modelName}:${JSON.stringify(parts.map(String))}`, COMPOSITE_ID_NAMESPACE);

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const SYNC_ID_RE = /^\d+$/;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it returns a truthy value (which is returned) or the
 * timeout passes. On timeout the error names `what` and shows `describe()`,
 * the state the scenario was waiting on.
 */
export const waitFor = async (what, check, { timeout = 10_000, interval = 25, describe } = {}) => {
  const deadline = Date.now() + timeout;
  let lastError;
  while (true) {
    try {
      const value = await check();
      if (value) {
        return value;
      }
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      let state = "";
      if (describe) {
        try {
          state = `\n  state: ${JSON.stringify(await describe())}`;
        } catch (error) {
          state = `\n  state: <describe failed: ${error}>`;
        }
      }
      const cause = lastError ? `\n  last error: ${lastError.stack ?? lastError}` : "";
      throw new Error(`Timed out after ${timeout} ms waiting for ${what}${state}${cause}`);
    }
    await sleep(interval);
  }
};

/** A TCP port that was free a moment ago on 127.0.0.1. */
export const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Resolves true when something accepts TCP connections on host:port. */
export const canConnect = (host, port, timeout = 1000) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });

/** Sends PING to a Redis server; resolves true on +PONG. */
export const redisPing = (url, timeout = 2000) =>
  new Promise((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname || "127.0.0.1", port: Number(port || 6379) });
    let buf = "";
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      buf += chunk.toString();
      if (buf.includes("\r\n")) {
        done(buf.startsWith("+PONG"));
      }
    });
    socket.once("error", () => done(false));
  });

export const truncate = (text, max = 2000) =>
  typeof text === "string" && text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;

/** Plain copy of an identity-map value (rows are plain objects without model classes). */
export const plain = (row) => (row ? { ...row } : row);

/** Number of subscribers of a Redis pub/sub channel (PUBSUB NUMSUB), or null on error. */
export const redisSubscribers = (url, channel, timeout = 2000) =>
  new Promise((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname || "127.0.0.1", port: Number(port || 6379) });
    const args = ["PUBSUB", "NUMSUB", channel];
    const command = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
    let buf = "";
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeout, () => done(null));
    socket.once("connect", () => socket.write(command));
    socket.on("data", (chunk) => {
      buf += chunk.toString();
      const match = /\r\n:(\d+)\r\n$/.exec(buf);
      if (match) {
        done(Number(match[1]));
      }
    });
    socket.once("error", () => done(null));
  });

/**
 * The pub/sub connections Redis at `url` holds (`CLIENT LIST TYPE pubsub`):
 * each client's port and its counts of channel (`sub`) and pattern (`psub`)
 * subscriptions.
 */
export const redisPubsubClients = (url, timeout = 2000) =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname || "127.0.0.1", port: Number(port || 6379) });
    const args = ["CLIENT", "LIST", "TYPE", "pubsub"];
    const command = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
    let buf = Buffer.alloc(0);
    socket.setTimeout(timeout, () => {
      socket.destroy();
      reject(new Error(`CLIENT LIST at ${url} timed out`));
    });
    socket.once("connect", () => socket.write(command));
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const header = /^\$(\d+)\r\n/.exec(buf.toString("latin1", 0, Math.min(buf.length, 32)));
      if (!header || buf.length < header[0].length + Number(header[1])) {
        return;
      }
      socket.destroy();
      const text = buf.subarray(header[0].length, header[0].length + Number(header[1])).toString();
      const field = (line, name) => new RegExp(`(?:^| )${name}=(\\S*)`).exec(line)?.[1];
      resolve(
        text
          .split("\n")
          .filter((line) => line.trim())
          .map((line) => ({
            port: Number(field(line, "addr").split(":").pop()),
            sub: Number(field(line, "sub")),
            psub: Number(field(line, "psub")),
          })),
      );
    });
    socket.once("error", reject);
  });

/**
 * The local ports of the TCP connections process `pid` holds to port
 * `remotePort` (Linux: its socket descriptors matched against /proc's tables).
 */
export const tcpPortsOf = (pid, remotePort) => {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const target = (() => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "";
      }
    })();
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) {
      inodes.add(inode);
    }
  }
  const ports = new Set();
  for (const table of ["tcp", "tcp6"]) {
    const path = `/proc/${pid}/net/${table}`;
    if (!fs.existsSync(path)) {
      continue;
    }
    for (const line of fs.readFileSync(path, "utf8").trim().split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = parseInt(f[1].split(":")[1], 16);
      const remote = parseInt(f[2].split(":")[1], 16);
      if (remote === remotePort && inodes.has(f[9])) {
        ports.add(local);
      }
    }
  }
  return ports;
};
