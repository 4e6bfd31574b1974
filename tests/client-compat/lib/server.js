// Starts the example server (examples/todo) on a fresh PostgreSQL database,
// one or two nodes, and tears everything down afterwards.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { rawFetch } from "./network.js";
import { freePort, redisPing, sleep } from "./util.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");

export const PG_URL = process.env.COMPAT_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
export const REDIS_URL = process.env.COMPAT_REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * The server binary: $TODO_SERVER_BIN, else the newer of
 * target/release/todo-example and target/debug/todo-example (under
 * $CARGO_TARGET_DIR when set). Throws a clear error when none exists.
 */
export const resolveServerBinary = () => {
  const explicit = process.env.TODO_SERVER_BIN;
  if (explicit) {
    const resolved = path.resolve(explicit);
    if (!fs.existsSync(resolved)) {
      throw new Error(
        `TODO_SERVER_BIN=${explicit} does not exist. Build it with ` +
          "`cargo build -p todo-example --release` or point TODO_SERVER_BIN at the binary.",
      );
    }
    return resolved;
  }
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, "target");
  const candidates = ["release", "debug"].map((profile) => path.join(targetDir, profile, "todo-example"));
  // The most recently built of the two, so a stale release build does not shadow a fresh debug one.
  const found = candidates
    .filter((candidate) => fs.existsSync(candidate))
    .sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs)[0];
  if (!found) {
    throw new Error(
      `Server binary not found (looked for ${candidates.join(" and ")}). Build it with ` +
        "`cargo build -p todo-example --release`, or set TODO_SERVER_BIN to its path.",
    );
  }
  return found;
};

export const makeLogDir = (label) => {
  const base = process.env.COMPAT_LOG_DIR
    ? path.resolve(process.env.COMPAT_LOG_DIR)
    : path.join(os.tmpdir(), "stratasync-client-compat");
  const dir = path.join(base, `${new Date().toISOString().replaceAll(/[:.]/g, "-")}-${label}-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};

const liveChildren = new Set();
const killChildren = () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
};
process.on("exit", killChildren);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    killChildren();
    process.exit(130);
  });
}

/** One server process on a fixed loopback port (kept across restarts). */
export class ServerNode {
  constructor({ name, binary, port, env, logDir }) {
    this.name = name;
    this.binary = binary;
    this.port = port;
    this.env = env;
    this.logFile = path.join(logDir, `${name}.log`);
    this.child = null;
    this.tail = [];
    this.exit = null;
  }

  get httpBase() {
    return `http://127.0.0.1:${this.port}`;
  }

  get syncEndpoint() {
    return `${this.httpBase}/sync`;
  }

  get wsEndpoint() {
    return `ws://127.0.0.1:${this.port}/sync/ws`;
  }

  async start({ timeout = 90_000 } = {}) {
    if (this.child) {
      throw new Error(`${this.name} is already running`);
    }
    const out = fs.createWriteStream(this.logFile, { flags: "a" });
    out.write(`\n===== start ${new Date().toISOString()} ${this.binary} BIND=${this.env.BIND}\n`);
    const child = spawn(this.binary, [], {
      cwd: repoRoot,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exit = null;
    liveChildren.add(child);
    const keep = (chunk) => {
      out.write(chunk);
      for (const line of chunk.toString().split("\n")) {
        if (line.trim()) {
          this.tail.push(line);
        }
      }
      if (this.tail.length > 60) {
        this.tail.splice(0, this.tail.length - 60);
      }
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("exit", (code, signal) => {
      liveChildren.delete(child);
      this.exit = { code, signal };
      out.write(`===== exit code=${code} signal=${signal}\n`);
      out.end();
      if (this.child === child) {
        this.child = null;
      }
    });
    child.on("error", (error) => {
      this.exit = { error: String(error) };
    });
    await this.waitReady(timeout, child);
  }

  async waitReady(timeout, child) {
    const deadline = Date.now() + timeout;
    let last = "no response";
    while (Date.now() < deadline) {
      if (this.child !== child || this.exit) {
        throw new Error(
          `${this.name} exited during startup (${JSON.stringify(this.exit)}); last output:\n${this.tail.join("\n")}\n(log: ${this.logFile})`,
        );
      }
      try {
        const res = await rawFetch(`${this.syncEndpoint}/deltas?after=0&limit=1`, {
          headers: { Authorization: "Bearer user:alice" },
          signal: AbortSignal.timeout(2000),
        });
        last = `HTTP ${res.status}: ${await res.text()}`;
        if (res.status === 200) {
          return;
        }
      } catch (error) {
        last = String(error?.cause?.code ?? error?.message ?? error);
      }
      await sleep(150);
    }
    throw new Error(
      `${this.name} not ready on ${this.httpBase} within ${timeout} ms (GET /sync/deltas: ${last}); last output:\n${this.tail.join("\n")}\n(log: ${this.logFile})`,
    );
  }

  /** Stops the process: SIGKILL simulates a crash, SIGTERM a shutdown. */
  async stop({ signal = "SIGTERM", graceMs = 5000 } = {}) {
    const { child } = this;
    if (!child) {
      return;
    }
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async restart(options) {
    await this.stop(options);
    await this.start();
  }
}

/**
 * A fresh database plus N server nodes sharing it (and Redis when N > 1).
 */
export class TestCluster {
  constructor({ nodes = 1, label = "single" } = {}) {
    this.nodeCount = nodes;
    this.label = label;
    this.nodes = [];
    this.dbName = `compat_${label}_${Date.now().toString(36)}_${process.pid}`.toLowerCase();
    this.logDir = makeLogDir(label);
    this.pool = null;
    this.dbCreated = false;
  }

  get databaseUrl() {
    return `${PG_URL}/${this.dbName}`;
  }

  async start() {
    const binary = resolveServerBinary();
    if (this.nodeCount > 1 && !(await redisPing(REDIS_URL))) {
      throw new Error(`Redis is not answering PING at ${REDIS_URL} (set COMPAT_REDIS_URL); the two-node suite needs it.`);
    }
    const admin = new pg.Client({ connectionString: `${PG_URL}/postgres` });
    try {
      await admin.connect();
    } catch (error) {
      throw new Error(`Cannot connect to PostgreSQL at ${PG_URL} (set COMPAT_PG_URL): ${error.message}`);
    }
    try {
      await admin.query(`CREATE DATABASE "${this.dbName}"`);
      this.dbCreated = true;
    } finally {
      await admin.end();
    }
    const baseEnv = { ...process.env };
    delete baseEnv.REDIS_URL;
    delete baseEnv.DATABASE_URL;
    for (let i = 0; i < this.nodeCount; i += 1) {
      const port = await freePort();
      const env = {
        ...baseEnv,
        BIND: `127.0.0.1:${port}`,
        DATABASE_URL: this.databaseUrl,
        RUST_LOG: process.env.RUST_LOG ?? "info",
        TODO_ADMIN: "1",
        TODO_SEED: "1",
      };
      if (this.nodeCount > 1) {
        env.REDIS_URL = REDIS_URL;
        // Streams of this cluster's own: a cluster's streams carry its log's
        // ids, and another cluster's (an earlier run's, on the same Redis)
        // would hold ids its fresh log has not reached.
        env.STRATASYNC_STREAM_PREFIX = `sync:deltas:${this.dbName}`;
      }
      this.nodes.push(new ServerNode({ binary, env, logDir: this.logDir, name: `node${i + 1}`, port }));
    }
    // One after the other: the first node migrates and seeds the database.
    for (const node of this.nodes) {
      await node.start();
    }
    this.pool = new pg.Pool({ connectionString: this.databaseUrl, max: 2 });
    // An idle connection killed from outside (pg_terminate_backend, restart) must
    // not crash the run; the pool replaces it on the next query.
    this.pool.on("error", (error) => process.stderr.write(`# test database pool: ${error.message}\n`));
  }

  node(index) {
    return this.nodes[index % this.nodes.length];
  }

  async sql(text, params) {
    const result = await this.pool.query(text, params);
    return result.rows;
  }

  /** Calls a dev admin route (TODO_ADMIN=1) on a node as the example's admin user; throws unless 2xx. */
  async admin(method, route, body, nodeIndex = 0) {
    const url = `${this.node(nodeIndex).httpBase}${route}`;
    const res = await rawFetch(url, {
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { Authorization: "Bearer user:admin", "Content-Type": "application/json" },
      method,
    });
    const text = await res.text();
    if (!res.ok) {
      throw new Error(`${method} ${route} ${JSON.stringify(body)} -> HTTP ${res.status}: ${text}`);
    }
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      return text;
    }
  }

  async dispose() {
    await Promise.all(this.nodes.map((node) => node.stop({ graceMs: 3000 }).catch(() => {})));
    await this.pool?.end().catch(() => {});
    if (this.dbCreated && !process.env.COMPAT_KEEP_DB) {
      const admin = new pg.Client({ connectionString: `${PG_URL}/postgres` });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${this.dbName}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    }
  }
}
