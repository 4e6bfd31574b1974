// The convergence property (issue 19): K real clients in one workspace write
// at random for T seconds, weighted toward conflicts, while their WebSockets
// are cut at random; once every outbox is empty and every client is at the
// log head of its groups, each client's identity maps must equal the rows the
// server holds.
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { ClientPool } from "./client.js";
import { httpLog, rawFetch, setTrafficLog } from "./network.js";
import { resolveServerBinary, TestCluster } from "./server.js";
import { defineRaces } from "./races.js";
import { compositeId, DAY_MS, sleep, waitFor } from "./util.js";

const MODELS = ["Label", "Todo", "TodoLabel"];

/**
 * The clients run as docs/protocol.md ("Moot writes and the client's rebase")
 * tells applications to run them: `rebaseStrategy: "client-wins"`, which
 * matches the server's commit-order last-writer-wins. With the client's
 * default, `server-wins`, a client loses its own update in a race (see the
 * client-defect scenario in races.js); COMPAT_CONVERGE_REBASE=server-wins
 * measures that.
 */
const CLIENT_OPTIONS = { rebaseStrategy: process.env.COMPAT_CONVERGE_REBASE ?? "client-wins" };

const intFromEnv = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name}=${raw} must be a positive integer`);
  }
  return value;
};

/**
 * The size of a run. CI: 10 seeds of 4 clients writing for 3 s per topology.
 * `COMPAT_CONVERGE_SEEDS`, `COMPAT_CONVERGE_SECONDS` and `COMPAT_CONVERGE_CLIENTS`
 * make it larger; `COMPAT_CONVERGE_SEED` replays a run from its first seed.
 */
export const convergeSettings = () => ({
  clients: intFromEnv("COMPAT_CONVERGE_CLIENTS", 4),
  firstSeed: intFromEnv("COMPAT_CONVERGE_SEED", 1 + Math.floor(Math.random() * 1_000_000)),
  seconds: intFromEnv("COMPAT_CONVERGE_SECONDS", 3),
  seeds: intFromEnv("COMPAT_CONVERGE_SEEDS", 10),
});

/** A small seeded generator (mulberry32): the same seed draws the same operations. */
export const seededRandom = (seed) => {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n) => Math.floor(next() * n);
  return {
    int,
    next,
    pick: (items) => (items.length === 0 ? undefined : items[int(items.length)]),
    uuid: () => {
      const hex = Array.from({ length: 32 }, () => int(16).toString(16));
      hex[12] = "4";
      hex[16] = "89ab"[int(4)];
      const s = hex.join("");
      return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
    },
  };
};

/**
 * A TCP relay between one client's WebSocket and a server node: `cut()`
 * drops every connection through it at once, as a flaky network would.
 */
export class SocketCutter {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.cuts = 0;
    this.server = net.createServer((downstream) => {
      const upstream = net.connect({ host: "127.0.0.1", port: this.targetPort });
      const pair = [downstream, upstream];
      for (const socket of pair) {
        this.sockets.add(socket);
        socket.on("error", () => pair.forEach((s) => s.destroy()));
        socket.on("close", () => {
          this.sockets.delete(socket);
          pair.forEach((s) => s.destroy());
        });
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    return this;
  }

  get wsEndpoint() {
    return `ws://127.0.0.1:${this.server.address().port}/sync/ws`;
  }

  cut() {
    if (this.sockets.size > 0) {
      this.cuts += 1;
    }
    for (const socket of this.sockets) {
      socket.destroy();
    }
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The rows a client holds, each with the id it is held under. */
const rowsOf = (client, model) => [...client.rows(model)].map(([id, row]) => ({ ...row, id }));

/** A random field change of a todo (every codec: string, nullable string, integer, float, instant, date-only). */
const todoChange = (rng) => {
  const change = {};
  const fields = ["title", "notes", "priority", "estimate", "completedAt", "dueOn"];
  for (let n = 1 + rng.int(2); n > 0; n -= 1) {
    const field = rng.pick(fields);
    const nullable = field !== "title" && field !== "priority" && rng.next() < 0.25;
    change[field] = nullable
      ? null
      : {
          completedAt: () => 1_767_225_600_000 + rng.int(1_000_000_000),
          dueOn: () => Date.UTC(2026, 0, 1) + rng.int(400) * DAY_MS,
          estimate: () => rng.int(40) / 4,
          notes: () => `note ${rng.int(1000)}`,
          priority: () => rng.int(7) - 3,
          title: () => `title ${rng.int(1000)}`,
        }[field]();
  }
  return change;
};

const newTodo = (rng, workspaceId, owner) => ({
  archivedAt: null,
  completedAt: null,
  createdAt: Date.now(),
  dueOn: null,
  estimate: null,
  id: rng.uuid(),
  notes: null,
  // The server makes the writer the owner; public, so every client loads it.
  owner,
  priority: 0,
  private: false,
  title: `todo ${rng.int(1000)}`,
  workspaceId,
});

const newLabel = (rng, workspaceId) => ({
  color: `#${rng.int(0xffffff).toString(16).padStart(6, "0")}`,
  id: rng.uuid(),
  name: `label ${rng.int(1000)}`,
  workspaceId,
});

const newLink = (todo, label, workspaceId) => ({
  createdAt: Date.now(),
  id: compositeId("TodoLabel", [todo.id, label.id]),
  labelId: label.id,
  todoId: todo.id,
  workspaceId,
});

/**
 * One random operation of `client` on the rows it currently holds. Few rows
 * and many clients make the same rows edited, archived and deleted at once,
 * and links made to rows another client is deleting. Returns its name.
 */
const randomOperation = async (client, rng, workspaceId) => {
  const sync = client.client;
  const todos = rowsOf(client, "Todo");
  const labels = rowsOf(client, "Label");
  const links = rowsOf(client, "TodoLabel");
  const roll = rng.next();
  if (roll < 0.08 || todos.length < 2) {
    await sync.create("Todo", newTodo(rng, workspaceId, client.user));
    return "create Todo";
  }
  const todo = rng.pick(todos);
  if (roll < 0.3) {
    await sync.update("Todo", todo.id, todoChange(rng));
    return "update Todo";
  }
  if (roll < 0.38) {
    await sync.delete("Todo", todo.id);
    return "delete Todo";
  }
  if (roll < 0.46) {
    await sync.archive("Todo", todo.id);
    return "archive Todo";
  }
  if (roll < 0.53) {
    await sync.unarchive("Todo", todo.id);
    return "unarchive Todo";
  }
  if (roll < 0.58 || labels.length === 0) {
    await sync.create("Label", newLabel(rng, workspaceId));
    return "create Label";
  }
  const label = rng.pick(labels);
  if (roll < 0.68) {
    await sync.update("Label", label.id, rng.next() < 0.5 ? { name: `label ${rng.int(1000)}` } : { color: "#000000", name: `dark ${rng.int(1000)}` });
    return "update Label";
  }
  if (roll < 0.74) {
    await sync.delete("Label", label.id);
    return "delete Label";
  }
  if (roll < 0.88 || links.length === 0) {
    const link = newLink(todo, label, workspaceId);
    if (client.has("TodoLabel", link.id)) {
      await sync.delete("TodoLabel", link.id);
      return "delete TodoLabel";
    }
    await sync.create("TodoLabel", link);
    return "create TodoLabel";
  }
  await sync.delete("TodoLabel", rng.pick(links).id);
  return "delete TodoLabel";
};

/** The server's rows of the workspace, read through a fresh bootstrap, by model and id. */
export const serverRows = async (node, user, workspaceId) => {
  const res = await rawFetch(`${node.syncEndpoint}/bootstrap?type=full&syncGroups=${workspaceId}`, {
    headers: { Authorization: `Bearer user:${user}` },
  });
  const text = await res.text();
  assert.equal(res.status, 200, `fresh bootstrap: ${text}`);
  const rows = Object.fromEntries(MODELS.map((m) => [m, new Map()]));
  for (const line of text.split("\n").filter((l) => l.trim())) {
    const row = JSON.parse(line);
    if (row.__class) {
      const { __class: model, ...fields } = row;
      rows[model].set(fields.id, fields);
    }
  }
  return rows;
};

/** Where a client's identity maps differ from the server's rows (absent and null are the same). */
const differences = (client, expected) => {
  const out = [];
  for (const model of MODELS) {
    const held = client.rows(model);
    for (const [id, row] of expected[model]) {
      const mine = held.get(id);
      if (!mine) {
        out.push({ id, kind: "missing", model, server: row });
        continue;
      }
      const fields = Object.keys(row).filter((k) => (mine[k] ?? null) !== (row[k] ?? null));
      if (fields.length > 0) {
        out.push({
          fields: Object.fromEntries(fields.map((k) => [k, { client: mine[k] ?? null, server: row[k] }])),
          id,
          kind: "different",
          model,
        });
      }
    }
    for (const [id, row] of held) {
      if (!expected[model].has(id)) {
        out.push({ client: row, id, kind: "extra (the server has no such row)", model });
      }
    }
  }
  return out;
};

/** Each transaction on `modelId` a client sent, with its answer and the exchange it was in. */
const answeredOn = (client, modelId) =>
  httpLog({ client: client.name, path: "/sync/mutate" }).flatMap((e) => {
    let request;
    let response;
    try {
      request = JSON.parse(e.reqBody);
      response = JSON.parse(e.resBody);
    } catch {
      return [];
    }
    return request.transactions
      .filter((tx) => tx.modelId === modelId)
      .map((tx) => ({ exchange: e, result: response.results?.find((r) => r.clientTxId === tx.clientTxId), tx }));
  });

/** The mutate answers a client got for `modelId` that were not successes, for a failure message. */
const rejectionsFor = (client, modelId) =>
  answeredOn(client, modelId)
    .filter(({ result }) => result?.success !== true)
    .map(({ result, tx }) => ({ action: tx.action, result }));

/** One line per transaction on `modelId` a client sent, with its answer: `INSERT tx=ab12cd -> ok 41`. */
const transactionsOn = (client, modelId) =>
  answeredOn(client, modelId).map(({ exchange: e, result: r, tx }) => {
    const answer = !r ? "no answer" : r.success ? `ok ${r.syncId ?? `(no syncId${r.warnings ? `: ${r.warnings[0]}` : ""})`}` : `refused: ${r.error}`;
    return `${e.t} ${tx.action} tx=${tx.clientTxId.slice(0, 8)} -> ${answer} (answered after ${e.ms} ms)`;
  });

/** One line per action on `modelId` a client received, over its WebSocket or a catch-up page: `41 D tx=ab12cd`. */
const deltasOn = (client, modelId) => {
  const pages = httpLog({ client: client.name, path: "/sync/deltas" }).flatMap((e) => {
    try {
      return JSON.parse(e.resBody).actions ?? [];
    } catch {
      return [];
    }
  });
  return [...client.wsActions(), ...pages]
    .filter((a) => a.modelId === modelId)
    .map((a) => `${a.syncId} ${a.action} tx=${String(a.clientTxId ?? "").slice(0, 8)}`);
};

/** What every client of the seed wrote to `modelId` and what the diverged one received of it, for a failure message. */
const historyOf = (clients, diverged, modelId) => ({
  received: deltasOn(diverged, modelId),
  writes: Object.fromEntries(clients.map((c) => [c.name, transactionsOn(c, modelId)]).filter(([, lines]) => lines.length > 0)),
});

/**
 * Registers the convergence property for one topology: `nodes` server nodes
 * on one PostgreSQL database (and Redis when there are two).
 */
export const defineConvergenceSuite = ({ nodes, label }) => {
  const settings = convergeSettings();
  it(`the todo-example server binary exists (${label})`, () => {
    process.stderr.write(`# server binary: ${resolveServerBinary()}\n`);
  });

  describe(`every client converges (${label})`, { concurrency: false }, () => {
    const cluster = new TestCluster({ label: `converge-${label}`, nodes });
    const pool = new ClientPool();
    const diverged = [];
    // Seeds per kind of difference, for the summary line.
    const kinds = new Map();

    before(async () => {
      setTrafficLog(path.join(cluster.logDir, "traffic.ndjson"));
      process.stderr.write(
        `# convergence (${label}): seeds ${settings.firstSeed}..${settings.firstSeed + settings.seeds - 1}, ` +
          `${settings.clients} clients, ${settings.seconds} s each; replay with COMPAT_CONVERGE_SEED=${settings.firstSeed}; logs: ${cluster.logDir}\n`,
      );
      await cluster.start();
    }, { timeout: 180_000 });

    after(async () => {
      await pool.stopAll();
      await cluster.dispose();
      process.stderr.write(
        `# convergence (${label}): ${diverged.length} of ${settings.seeds} seeds diverged${diverged.length ? ` (${diverged.join(", ")})` : ""}\n`,
      );
      for (const [kind, seeds] of [...kinds].sort()) {
        process.stderr.write(`#   ${kind} rows: ${seeds.length} seeds (${seeds.join(", ")})\n`);
      }
    }, { timeout: 60_000 });

    afterEach(() => pool.stopAll(), { timeout: 30_000 });

    defineRaces({
      cluster,
      fresh: async (name, clientOptions = {}) => {
        const workspaceId = `${name}-${label}`;
        const [a, b] = await Promise.all(
          ["a", "b"].map(async (who, i) => {
            const user = `${workspaceId}-${who}`;
            await cluster.admin("POST", "/admin/memberships", { groupId: workspaceId, userId: user });
            return pool.start({ clientOptions, name: user, node: cluster.node(i === 0 ? 0 : nodes - 1), user });
          }),
        );
        await Promise.all([a.waitLive(), b.waitLive()]);
        return { a, b, workspaceId };
      },
    });

    for (let n = 0; n < settings.seeds; n += 1) {
      const seed = settings.firstSeed + n;
      it(`seed ${seed}: ${settings.clients} clients writing for ${settings.seconds} s hold the server's rows once quiet`, { timeout: 120_000 }, async (t) => {
        const workspaceId = `conv-${label}-${seed}`;
        const users = Array.from({ length: settings.clients }, (_, i) => `conv${seed}u${i}`);
        const cutters = [];
        try {
          for (const user of users) {
            await cluster.admin("POST", "/admin/memberships", { groupId: workspaceId, userId: user });
          }
          const startClient = async (i) => {
            const node = cluster.node(i);
            const cutter = await new SocketCutter(node.port).start();
            cutters.push(cutter);
            return pool.start({
              clientOptions: CLIENT_OPTIONS,
              name: `${workspaceId}-c${i}`,
              node,
              user: users[i],
              wsEndpoint: cutter.wsEndpoint,
            });
          };
          // A few shared rows first, so that every client starts on the same ones.
          const setup = seededRandom(seed);
          const first = await startClient(0);
          const todos = [0, 1, 2].map(() => newTodo(setup, workspaceId, first.user));
          const labels = [0, 1].map(() => newLabel(setup, workspaceId));
          for (const row of todos) {
            await first.client.create("Todo", row);
          }
          for (const row of labels) {
            await first.client.create("Label", row);
          }
          await first.client.create("TodoLabel", newLink(todos[0], labels[0], workspaceId));
          await first.settle();
          const clients = [first];
          for (let i = 1; i < users.length; i += 1) {
            clients.push(await startClient(i));
          }
          await Promise.all(clients.map((c) => c.waitLive()));

          // The run: every client writes at random; sockets drop at random.
          const deadline = Date.now() + settings.seconds * 1000;
          const counts = {};
          const writer = async (client, i) => {
            const rng = seededRandom(seed * 101 + i + 1);
            while (Date.now() < deadline) {
              try {
                const op = await randomOperation(client, rng, workspaceId);
                counts[op] = (counts[op] ?? 0) + 1;
              } catch (error) {
                // The row left this client's map between the pick and the call.
                counts.refused = (counts.refused ?? 0) + 1;
                if (!/not found/.test(String(error?.message))) {
                  throw error;
                }
              }
              await sleep(rng.int(60));
            }
          };
          const chaos = async () => {
            const rng = seededRandom(seed * 7919);
            while (Date.now() < deadline) {
              await sleep(200 + rng.int(800));
              rng.pick(cutters)?.cut();
            }
          };
          await Promise.all([...clients.map(writer), chaos()]);
          t.diagnostic(`operations: ${JSON.stringify(counts)}; socket cuts: ${cutters.reduce((s, c) => s + c.cuts, 0)}`);

          // Quiet: every outbox empty, every client at the log head of its groups.
          const head = async (user) =>
            BigInt(
              (await cluster.sql(
                "SELECT coalesce(max(id), 0)::text AS id FROM sync_actions WHERE group_id IS NULL OR group_id = ANY($1)",
                [[workspaceId, user]],
              ))[0].id,
            );
          // A transaction waiting for an id the client's cursor has reached is
          // done in substance: the client completes it when its next packet
          // arrives (a moot write answered after that id was applied waits so).
          const unsettled = (c) =>
            [...c.storage.outbox.values()].filter(
              (tx) =>
                ["queued", "sent", "awaitingSync"].includes(tx.state) &&
                !(tx.state === "awaitingSync" && BigInt(tx.syncIdNeededForCompletion ?? "0") <= BigInt(c.lastSyncId)),
            ).length;
          const quiet = async () => {
            for (const c of clients) {
              if (unsettled(c) !== 0 || BigInt(c.lastSyncId) < (await head(c.user))) {
                return false;
              }
            }
            return true;
          };
          await waitFor(`seed ${seed}: every outbox empty and every client at the log head`, quiet, {
            describe: async () => Promise.all(clients.map(async (c) => ({ ...c.describe(), head: String(await head(c.user)) }))),
            timeout: 45_000,
          });
          // A rejection whose request was still in flight lands after the outbox emptied.
          await sleep(300);
          assert.ok(await quiet(), `seed ${seed}: still quiet 300 ms later`);

          const expected = await serverRows(cluster.node(0), users[0], workspaceId);
          const [{ n: dbTodos }] = await cluster.sql("SELECT count(*)::int AS n FROM todos WHERE workspace_id = $1", [workspaceId]);
          assert.equal(expected.Todo.size, dbTodos, "the fresh bootstrap holds every todo of the workspace");
          const report = clients
            .map((c) => ({ client: c.name, differences: differences(c, expected) }))
            .filter((r) => r.differences.length > 0)
            .map((r) => ({
              ...r,
              differences: r.differences.map((d) => {
                const client = clients.find((c) => c.name === r.client);
                return { ...d, history: historyOf(clients, client, d.id), rejected: rejectionsFor(client, d.id) };
              }),
            }));
          if (report.length > 0) {
            diverged.push(seed);
            for (const kind of new Set(report.flatMap((r) => r.differences.map((d) => `${d.kind.split(" ")[0]} ${d.model}`)))) {
              kinds.set(kind, [...(kinds.get(kind) ?? []), seed]);
            }
          }
          assert.deepEqual(
            report,
            [],
            `seed ${seed} (replay: COMPAT_CONVERGE_SEED=${seed} COMPAT_CONVERGE_SEEDS=1): clients diverge from the server's rows`,
          );
        } finally {
          await pool.stopAll();
          await Promise.all(cutters.map((c) => c.close()));
        }
      });
    }
  });
};
