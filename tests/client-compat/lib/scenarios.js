// The client-compatibility scenarios (issue 6). Each one drives the real
// @stratasync/client against the example server and asserts on the client's
// resulting state; a few also check the raw wire answer so that a failure
// names the request and response that were wrong.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import WebSocket from "ws";
import { ClientPool } from "./client.js";
import { httpLog, intercept, rawFetch, setTrafficLog } from "./network.js";
import { REDIS_URL, resolveServerBinary, TestCluster } from "./server.js";
import {
  compositeId,
  DAY_MS,
  freePort,
  redisPubsubClients,
  redisSubscribers,
  sleep,
  SYNC_ID_RE,
  tcpPortsOf,
  UUID_RE,
  waitFor,
} from "./util.js";

const WORKSPACE = "demo";

// ---------------------------------------------------------------- checks --

const isInstant = (v) => Number.isInteger(v) && v > 0;
const isDateOnly = (v) => Number.isInteger(v) && v % DAY_MS === 0;

/** Asserts that a Todo row has the wire types of the example's model. */
const assertTodoShape = (row, where) => {
  const at = `${where}: Todo ${row?.id}`;
  assert.match(row.id, UUID_RE, `${at}: id must be a UUID string`);
  assert.equal(typeof row.title, "string", `${at}: title must be a string, got ${JSON.stringify(row.title)}`);
  assert.ok(row.notes === null || typeof row.notes === "string", `${at}: notes must be string|null, got ${JSON.stringify(row.notes)}`);
  assert.ok(Number.isInteger(row.priority), `${at}: priority must be an integer number, got ${JSON.stringify(row.priority)}`);
  assert.ok(
    row.estimate === null || (typeof row.estimate === "number" && Number.isFinite(row.estimate)),
    `${at}: estimate must be number|null, got ${JSON.stringify(row.estimate)}`,
  );
  assert.ok(
    row.completedAt === null || isInstant(row.completedAt),
    `${at}: completedAt must be epoch-ms number|null, got ${JSON.stringify(row.completedAt)}`,
  );
  assert.ok(
    row.dueOn === null || isDateOnly(row.dueOn),
    `${at}: dueOn must be epoch ms of a UTC midnight (multiple of 86400000) or null, got ${JSON.stringify(row.dueOn)}`,
  );
  assert.equal(typeof row.private, "boolean", `${at}: private must be a boolean, got ${JSON.stringify(row.private)}`);
  assert.equal(typeof row.owner, "string", `${at}: owner must be a string, got ${JSON.stringify(row.owner)}`);
  assert.equal(row.workspaceId, WORKSPACE, `${at}: workspaceId`);
  assert.ok(isInstant(row.createdAt), `${at}: createdAt must be an epoch-ms number, got ${JSON.stringify(row.createdAt)}`);
  assert.ok(
    row.archivedAt === null || row.archivedAt === undefined || isInstant(row.archivedAt),
    `${at}: archivedAt must be epoch-ms number|null, got ${JSON.stringify(row.archivedAt)}`,
  );
};

const assertLabelShape = (row, where) => {
  const at = `${where}: Label ${row?.id}`;
  assert.match(row.id, UUID_RE, `${at}: id`);
  assert.equal(typeof row.name, "string", `${at}: name`);
  assert.equal(typeof row.color, "string", `${at}: color`);
  assert.equal(row.workspaceId, WORKSPACE, `${at}: workspaceId`);
};

/** Compares a received row with what was written; createdAt may be set by the server. */
const assertSameTodo = (actual, expected, where) => {
  assert.ok(actual, `${where}: row ${expected.id} missing`);
  for (const [key, value] of Object.entries(expected)) {
    if (key === "createdAt") {
      assert.ok(
        isInstant(actual.createdAt) && Math.abs(actual.createdAt - value) < 120_000,
        `${where}: createdAt ${JSON.stringify(actual.createdAt)} is not an epoch-ms instant near ${value}`,
      );
      continue;
    }
    if (key === "archivedAt" && value === null && actual.archivedAt === undefined) {
      // An insert action carries id + insert fields only (PROTOCOL §7); archivedAt
      // is no insert field, so a row known only from its insert lacks it.
      continue;
    }
    assert.deepEqual(actual[key], value, `${where}: field ${key} is ${JSON.stringify(actual[key])}, expected ${JSON.stringify(value)}`);
  }
};

const idsOf = (map) => [...map.keys()].toSorted();

const fullTodo = (overrides = {}) => ({
  archivedAt: null,
  completedAt: 1_767_225_600_123, // ms precision must survive
  createdAt: Date.now(),
  dueOn: Date.UTC(2026, 2, 14),
  estimate: 2.75,
  id: randomUUID(),
  notes: 'multi\nline "quoted" ünïcødé ✓',
  // The server makes the writer the owner; pass `owner` for other writers.
  owner: "alice",
  priority: 3,
  private: false,
  title: `compat todo ${randomUUID().slice(0, 8)}`,
  workspaceId: WORKSPACE,
  ...overrides,
});

/** Whether `user` loads `todo` (the example's scope: public, or their own). */
const visibleTo = (user) => (todo) => !todo.private || todo.owner === user;

/** GET on the sync API as a user, without the client. */
const apiGet = async (node, route, user) => {
  const res = await rawFetch(`${node.syncEndpoint}${route}`, {
    headers: { Authorization: `Bearer user:${user}` },
  });
  const text = await res.text();
  return { status: res.status, text };
};

const ndjson = (text) =>
  text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** Opens a raw WebSocket, sends one subscribe frame and returns the first answer. */
const rawSubscribe = (node, user, afterSyncId) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${node.wsEndpoint}?token=${encodeURIComponent(`user:${user}`)}`);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("no answer to subscribe within 5 s"));
    }, 5000);
    ws.on("open", () => ws.send(JSON.stringify({ afterSyncId, token: `user:${user}`, type: "subscribe" })));
    ws.on("message", (data) => {
      clearTimeout(timer);
      ws.close();
      resolve(JSON.parse(data.toString()));
    });
    ws.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });

/** Waits for logged HTTP exchanges (a response is logged once its body was read). */
const waitHttp = (what, select, count = 1) =>
  waitFor(what, () => {
    const found = select(httpLog()).filter((e) => e.status !== undefined || e.error !== undefined);
    return found.length >= count ? found : null;
  }, { describe: () => select(httpLog()).map((e) => [e.method, e.url, e.status, e.error]) });

const countActionsByTxId = async (cluster, clientTxIds) => {
  const rows = await cluster.sql(
    "SELECT client_tx_id, count(*)::int AS n, min(id)::text AS sync_id FROM sync_actions WHERE client_tx_id = ANY($1) GROUP BY client_tx_id",
    [clientTxIds],
  );
  return new Map(rows.map((r) => [r.client_tx_id, r]));
};

// ----------------------------------------------------------------- suite --

/**
 * Registers the scenarios. With `nodes: 2` client A (alice) talks to node 1
 * and the other clients to node 2; both nodes share the database and Redis.
 */
export const defineCompatSuite = ({ nodes, label }) => {
  // A clear, counted failure when there is nothing to test against.
  it(`the todo-example server binary exists (${label})`, () => {
    process.stderr.write(`# server binary: ${resolveServerBinary()}\n`);
  });

  describe(`@stratasync/client 0.5.1 against todo-example (${label})`, { concurrency: false }, () => {
    const cluster = new TestCluster({ label, nodes });
    const pool = new ClientPool();
    const nodeA = () => cluster.node(0);
    const nodeB = () => cluster.node(nodes > 1 ? 1 : 0);
    /** A scenario with a bound on its duration (every wait inside has its own, shorter one). */
    const scenario = (name, timeout, fn) =>
      typeof timeout === "function" ? it(name, { timeout: 60_000 }, timeout) : it(name, { timeout }, fn);
    const track = (captured) => ({ onTransactionCreated: (tx) => captured.push(tx.clientTxId) });

    before(async () => {
      setTrafficLog(path.join(cluster.logDir, "traffic.ndjson"));
      process.stderr.write(`# client-compat logs: ${cluster.logDir}\n`);
      await cluster.start();
    }, { timeout: 180_000 });

    afterEach(async () => {
      await pool.stopAll();
      // A scenario that failed while a node was down must not break the next one.
      for (const node of cluster.nodes) {
        if (!node.child) {
          await node.start();
        }
      }
    }, { timeout: 120_000 });

    after(async () => {
      await pool.stopAll();
      await cluster.dispose();
    }, { timeout: 60_000 });

    scenario("bootstraps the seeded rows with every codec type intact", async () => {
      const alice = await pool.start({ node: nodeA(), user: "alice" });
      const todos = alice.rows("Todo");
      const labels = alice.rows("Label");
      const links = alice.rows("TodoLabel");
      assert.equal(todos.size, 4, `alice should bootstrap the 3 seeded public todos and her private one, got ${JSON.stringify([...todos.values()])}`);
      assert.equal(
        [...todos.values()].filter((t) => t.private && t.owner === "alice").length,
        1,
        "the seed holds one private todo of alice's",
      );
      assert.equal(labels.size, 2, `alice should bootstrap the 2 seeded labels, got ${JSON.stringify([...labels.values()])}`);
      assert.equal(links.size, 1, `alice should bootstrap the seeded TodoLabel, got ${JSON.stringify([...links.values()])}`);
      for (const row of todos.values()) {
        assertTodoShape(row, "bootstrap");
      }
      for (const row of labels.values()) {
        assertLabelShape(row, "bootstrap");
      }
      const all = [...todos.values()];
      for (const field of ["notes", "estimate", "completedAt", "dueOn"]) {
        assert.ok(
          all.some((t) => t[field] !== null && t[field] !== undefined),
          `seed must have a todo with a non-null ${field}; got ${JSON.stringify(all)}`,
        );
      }
      const [link] = links.values();
      assert.ok(todos.has(link.todoId), `seeded TodoLabel.todoId ${link.todoId} is not a seeded todo`);
      assert.ok(labels.has(link.labelId), `seeded TodoLabel.labelId ${link.labelId} is not a seeded label`);
      assert.equal(link.workspaceId, WORKSPACE);
      assert.ok(isInstant(link.createdAt), `TodoLabel.createdAt must be epoch ms, got ${JSON.stringify(link.createdAt)}`);
      assert.equal(
        link.id,
        compositeId("TodoLabel", [link.todoId, link.labelId]),
        "TodoLabel id must be UUID v5 of TodoLabel:[todoId,labelId] (PROTOCOL §3)",
      );

      const meta = await alice.storage.getMeta();
      assert.match(meta.lastSyncId, SYNC_ID_RE, "client cursor after bootstrap");
      assert.ok(
        meta.subscribedSyncGroups.includes(WORKSPACE) && meta.subscribedSyncGroups.includes("alice"),
        `alice's subscribedSyncGroups should hold demo and alice, got ${JSON.stringify(meta.subscribedSyncGroups)}`,
      );

      const bob = await pool.start({ node: nodeB(), user: "bob" });
      for (const model of ["Todo", "Label", "TodoLabel"]) {
        const visible = [...alice.rows(model)].filter(([, row]) => model !== "Todo" || visibleTo("bob")(row));
        assert.deepEqual(
          Object.fromEntries(bob.rows(model)),
          Object.fromEntries(visible),
          `bob (same workspace) must bootstrap the same ${model} rows as alice, but for her private todo`,
        );
      }

      const carol = await pool.start({ node: nodeB(), user: "carol" });
      for (const model of ["Todo", "Label", "TodoLabel"]) {
        assert.equal(carol.rows(model).size, 0, `carol (no workspace) must bootstrap no ${model} rows, got ${JSON.stringify([...carol.rows(model).values()])}`);
      }
      const carolMeta = await carol.storage.getMeta();
      assert.ok(
        !carolMeta.subscribedSyncGroups.includes(WORKSPACE),
        `carol's subscribedSyncGroups must not hold demo: ${JSON.stringify(carolMeta.subscribedSyncGroups)}`,
      );
    });

    if (nodes > 1) {
      scenario("has each node subscribed to the Redis channel sync:deltas on exactly one connection", async () => {
        // Redis may be shared with other runs, so the channel's total count
        // says nothing exact; each node's own connections do.
        const redisPort = Number(new URL(REDIS_URL).port || 6379);
        const pubsub = await redisPubsubClients(REDIS_URL);
        for (const node of cluster.nodes) {
          const ports = tcpPortsOf(node.child.pid, redisPort);
          const own = pubsub.filter((client) => ports.has(client.port));
          assert.deepEqual(
            own.map(({ sub, psub }) => ({ sub, psub })),
            [{ sub: 1, psub: 0 }],
            `${node.name} must hold one pub/sub connection with one channel (PROTOCOL §9); its Redis ports ${[...ports]}, pub/sub clients ${JSON.stringify(pubsub)}`,
          );
        }
        const subscribers = await redisSubscribers(REDIS_URL, "sync:deltas");
        assert.ok(
          subscribers >= nodes,
          `PUBSUB NUMSUB sync:deltas = ${subscribers}: the nodes' channel is sync:deltas (other runs may add to it)`,
        );
      });
    }

    scenario("delivers A's create / update / archive / unarchive / delete live to B over the WebSocket", async (t) => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const b = await pool.start({ node: nodeB(), user: "bob" });
      await a.waitLive();
      await b.waitLive();

      const todo = fullTodo();
      const { id } = todo;
      const sentAt = Date.now();
      await a.client.create("Todo", todo);
      const got = await b.waitRow("Todo", id, (r) => r !== null, "insert to arrive");
      t.diagnostic(`insert reached bob ${Date.now() - sentAt} ms after alice wrote it`);
      assertTodoShape(got, "bob after insert");
      assertSameTodo(got, todo, "bob after insert");

      const changes = {
        completedAt: null,
        dueOn: Date.UTC(2027, 0, 1),
        estimate: null,
        notes: null,
        priority: -2,
        title: "compat: renamed",
      };
      await a.client.update("Todo", id, changes);
      await b.waitRow("Todo", id, (r) => r?.title === changes.title, "update to arrive");
      assertSameTodo(b.row("Todo", id), { ...todo, ...changes }, "bob after update");

      const again = { completedAt: 1_767_312_000_999, estimate: 0.5, notes: "back" };
      await a.client.update("Todo", id, again);
      await b.waitRow("Todo", id, (r) => r?.notes === "back", "second update to arrive");
      assertSameTodo(b.row("Todo", id), { ...todo, ...changes, ...again }, "bob after second update");

      await a.client.archive("Todo", id);
      const { archivedAt } = a.row("Todo", id);
      assert.ok(isInstant(archivedAt));
      await b.waitRow("Todo", id, (r) => r?.archivedAt === archivedAt, "archive to arrive");
      const visible = await b.client.query("Todo");
      assert.ok(!visible.data.some((r) => r.id === id), "an archived todo is hidden from bob's default query");

      await a.client.unarchive("Todo", id);
      await b.waitRow("Todo", id, (r) => r !== null && r.archivedAt === null, "unarchive to arrive");

      await b.client.update("Todo", id, { title: "edited by bob" });
      await a.waitRow("Todo", id, (r) => r?.title === "edited by bob", "bob's update to reach alice");
      await b.settle();

      await a.client.delete("Todo", id);
      await b.waitRow("Todo", id, (r) => r === null, "delete to arrive");
      await a.settle();
      await b.settle();

      // Labels: insert, update, delete.
      const label = { color: "#ff8800", id: randomUUID(), name: "compat label", workspaceId: WORKSPACE };
      await a.client.create("Label", label);
      await b.waitRow("Label", label.id, (r) => r?.name === label.name, "label insert");
      assert.deepEqual(b.row("Label", label.id), label);
      await a.client.update("Label", label.id, { color: "#000000", name: "renamed label" });
      await b.waitRow("Label", label.id, (r) => r?.color === "#000000" && r.name === "renamed label", "label update");
      await a.client.delete("Label", label.id);
      await b.waitRow("Label", label.id, (r) => r === null, "label delete");
      await a.settle();

      // What bob's socket carried for the todo: every action, in id order.
      const seen = b.wsActions().filter((x) => x.modelId === id);
      assert.deepEqual(
        seen.map((x) => x.action),
        ["I", "U", "U", "A", "V", "U", "D"],
        `bob's WebSocket should carry each action on the todo once, in order; got ${JSON.stringify(seen)}`,
      );
      const ids = seen.map((x) => BigInt(x.syncId));
      assert.ok(ids.every((v, i) => i === 0 || v > ids[i - 1]), "syncIds ascend");
      for (const action of seen) {
        assert.match(action.syncId, SYNC_ID_RE, "syncId is a string of digits");
        assert.equal(action.modelName, "Todo");
        assert.equal(action.groupId, WORKSPACE);
        assert.match(action.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, "createdAt is ISO-8601 UTC with ms");
      }
      const archive = seen.find((x) => x.action === "A");
      assert.deepEqual(archive.data, { archivedAt }, "archive action data");
      const unarchive = seen.find((x) => x.action === "V");
      assert.deepEqual(unarchive.data, { archivedAt: null }, "unarchive action data");
      for (const frame of b.framesIn("delta")) {
        assert.equal(typeof frame.json.packet.lastSyncId, "string", "delta frame packet.lastSyncId is a string");
      }

      // A fresh client bootstraps a written row with exactly the written values.
      const second = fullTodo({ estimate: 1.125, priority: 0 });
      await a.client.create("Todo", second);
      await a.settle();
      const c = await pool.start({ node: nodeB(), user: "bob" });
      assertSameTodo(c.row("Todo", second.id), second, "fresh bootstrap of a client-written todo");
      assert.ok(!c.has("Todo", id), "the deleted todo is not bootstrapped");
    });

    scenario("shows a user outside the workspace none of it, and refuses their writes into it", async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const carol = await pool.start({ node: nodeB(), user: "carol" });
      await a.waitLive();
      await carol.waitLive();

      const todo = fullTodo();
      const label = { color: "red", id: randomUUID(), name: "secret", workspaceId: WORKSPACE };
      await a.client.create("Todo", todo);
      await a.client.create("Label", label);
      await a.client.update("Todo", todo.id, { title: "still secret" });
      const link = compositeId("TodoLabel", [todo.id, label.id]);
      await a.client.create("TodoLabel", { createdAt: Date.now(), id: link, labelId: label.id, todoId: todo.id, workspaceId: WORKSPACE });
      await a.client.archive("Todo", todo.id);
      await a.settle();

      // Carol writes in her personal group; once that is confirmed, her
      // cursor has passed everything alice wrote.
      const own = fullTodo({ owner: "carol", workspaceId: "carol" });
      await carol.client.create("Todo", own);
      await carol.settle();
      assert.deepEqual(idsOf(carol.rows("Todo")), [own.id], "carol holds only her own todo");
      assert.equal(carol.rows("Label").size, 0, "carol holds no labels");
      assert.equal(carol.rows("TodoLabel").size, 0, "carol holds no TodoLabels");
      const leaked = carol.wsActions().filter((x) => x.groupId === WORKSPACE || [todo.id, label.id, link].includes(x.modelId));
      assert.deepEqual(leaked, [], "no demo action reached carol's WebSocket");

      const deltas = await apiGet(nodeB(), "/deltas?after=0&limit=5000", "carol");
      assert.equal(deltas.status, 200, deltas.text);
      const demoActions = JSON.parse(deltas.text).actions.filter((x) => x.groupId === WORKSPACE);
      assert.deepEqual(demoActions, [], "GET /sync/deltas as carol must not return demo actions");
      const boot = await apiGet(nodeB(), "/bootstrap?type=full", "carol");
      const demoRows = ndjson(boot.text).filter((l) => l.__class && l.workspaceId === WORKSPACE);
      assert.deepEqual(demoRows, [], "GET /sync/bootstrap as carol must not return demo rows");

      // A write into a workspace carol does not hold is rejected; the client
      // rolls its optimistic row back.
      const intruder = fullTodo({ title: "intruder" });
      await carol.client.create("Todo", intruder);
      await carol.waitRow("Todo", intruder.id, (r) => r === null, "rejected insert rolled back");
      await carol.settle();
      const [mutate] = await waitHttp("carol's intruding insert", (log) =>
        log.filter((e) => e.client === carol.name && e.path === "/sync/mutate" && e.reqBody?.includes(intruder.id)),
      );
      const answer = JSON.parse(mutate.resBody);
      assert.equal(answer.results?.[0]?.success, false, `the server must refuse it: ${mutate.status} ${mutate.resBody}`);
      const rows = await cluster.sql("SELECT count(*)::int AS n FROM sync_actions WHERE model_id = $1", [intruder.id]);
      assert.equal(rows[0].n, 0, "no sync action was written for the refused insert");
    });

    scenario("inserts and deletes a composite (join-table) row", async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const b = await pool.start({ node: nodeB(), user: "bob" });
      await a.waitLive();
      await b.waitLive();
      const todo = fullTodo();
      await a.client.create("Todo", todo);
      const [label] = a.rows("Label").values();
      assert.ok(label, "a seeded label exists");
      const id = compositeId("TodoLabel", [todo.id, label.id]);
      const row = { createdAt: Date.now(), id, labelId: label.id, todoId: todo.id, workspaceId: WORKSPACE };

      await a.client.create("TodoLabel", row);
      await waitFor(
        "bob to receive the TodoLabel",
        () => [...b.rows("TodoLabel").values()].some((r) => r.todoId === todo.id),
        { describe: () => [...b.rows("TodoLabel").values()] },
      );
      const atB = [...b.rows("TodoLabel").values()].filter((r) => r.todoId === todo.id);
      assert.equal(atB.length, 1, `bob holds one TodoLabel for the todo: ${JSON.stringify(atB)}`);
      assert.equal(atB[0].id, id, "the server's canonical id is UUID v5 of TodoLabel:[todoId,labelId] (PROTOCOL §3)");
      assert.equal(atB[0].labelId, label.id);
      assert.equal(atB[0].workspaceId, WORKSPACE);
      assert.ok(isInstant(atB[0].createdAt), `createdAt is epoch ms: ${JSON.stringify(atB[0].createdAt)}`);
      await a.settle();
      assert.equal([...a.rows("TodoLabel").values()].filter((r) => r.todoId === todo.id).length, 1, "alice holds it once");

      await a.client.delete("TodoLabel", id);
      await b.waitRow("TodoLabel", id, (r) => r === null, "composite delete to arrive");
      await a.settle();
      const del = b.wsActions().find((x) => x.modelId === id && x.action === "D");
      assert.ok(del, "bob's socket carried the composite delete");

      // The same pair can be linked again after the delete.
      await a.client.create("TodoLabel", { ...row, createdAt: Date.now() });
      await b.waitRow("TodoLabel", id, (r) => r !== null, "re-insert to arrive");
      await a.settle();
    });

    scenario("deduplicates a retried batch whose first answer was lost", async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const b = await pool.start({ node: nodeB(), user: "bob" });
      await a.waitLive();
      await b.waitLive();
      const lost = intercept({
        handle: async ({ forward }) => {
          const res = await forward();
          await res.text();
          throw new TypeError("fetch failed (compat: connection lost after the server applied the batch)");
        },
        match: ({ client, method, url }) => client === a.name && method === "POST" && url.endsWith("/sync/mutate"),
      });
      try {
        const todo = fullTodo();
        const label = { color: "blue", id: randomUUID(), name: "retried", workspaceId: WORKSPACE };
        await Promise.all([a.client.create("Todo", todo), a.client.create("Label", label)]);
        await a.settle(20_000);
        // The deltas can confirm the writes before the lost answer's body was read.
        await waitFor("the intercepted answer to be read", () => lost.hits[0]?.forwardedStatus !== undefined);
        assert.equal(lost.hits.length, 1, "the first mutate was intercepted");
        assert.equal(lost.hits[0].forwardedStatus, 200, `first attempt: ${lost.hits[0].forwardedBody}`);
        const first = JSON.parse(lost.hits[0].forwardedBody);
        const sent = await waitHttp(
          "the client to retry the batch",
          (log) => log.filter((e) => e.client === a.name && e.path === "/sync/mutate" && e.reqBody?.includes(todo.id)),
          2,
        );
        const retry = sent.at(-1);
        assert.equal(retry.status, 200, `retry answered ${retry.status}: ${retry.resBody}`);
        assert.equal(retry.reqBody, sent[0].reqBody, "the retry carries the same batch");
        const second = JSON.parse(retry.resBody);
        assert.deepEqual(
          second.results.map((r) => [r.clientTxId, r.success, r.syncId]),
          first.results.map((r) => [r.clientTxId, r.success, r.syncId]),
          "a retried transaction succeeds with its original syncId",
        );
        const txIds = JSON.parse(sent[0].reqBody).transactions.map((t) => t.clientTxId);
        const counts = await countActionsByTxId(cluster, txIds);
        for (const txId of txIds) {
          assert.equal(counts.get(txId)?.n, 1, `exactly one sync action for clientTxId ${txId}`);
        }
        await b.waitRow("Todo", todo.id, (r) => r !== null, "deduplicated todo at bob");
        await b.waitRow("Label", label.id, (r) => r !== null, "deduplicated label at bob");
        assertSameTodo(b.row("Todo", todo.id), todo, "bob");
        await sleep(300);
        const inserts = b.wsActions().filter((x) => x.action === "I" && [todo.id, label.id].includes(x.modelId));
        assert.equal(inserts.length, 2, `bob received each insert once: ${JSON.stringify(inserts)}`);
      } finally {
        lost.remove();
      }
    });

    scenario("pages through deltas with hasMore", async () => {
      // Bob's client with no working WebSocket: only REST catch-up can bring him the writes.
      const deadPort = await freePort();
      const b = await pool.start({ node: nodeB(), user: "bob", wsEndpoint: `ws://127.0.0.1:${deadPort}/sync/ws` });
      // Let the client's own start-up catch-up finish before anything is written.
      await waitHttp("bob's start-up catch-up", (log) => log.filter((e) => e.client === b.name && e.path === "/sync/deltas"));
      await sleep(200);
      const cursor = b.lastSyncId;
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const written = [];
      for (let i = 0; i < 7; i += 1) {
        const todo = fullTodo({ priority: i, title: `page ${i}` });
        written.push(todo);
        await a.client.create("Todo", todo);
      }
      await a.settle();

      const raw = await apiGet(nodeB(), `/deltas?after=${cursor}&limit=3`, "bob");
      assert.equal(raw.status, 200, raw.text);
      const page = JSON.parse(raw.text);
      assert.equal(page.actions.length, 3, `limit=3 returns 3 actions: ${raw.text}`);
      assert.equal(page.hasMore, true, `hasMore when more exist: ${raw.text}`);
      assert.equal(page.lastSyncId, page.actions[2].syncId, "lastSyncId is the last returned id");

      // The client sends no limit; make the server page by 3 to exercise hasMore.
      const paged = intercept({
        handle: ({ forward, url }) => {
          const u = new URL(url);
          u.searchParams.set("limit", "3");
          return forward(u.toString());
        },
        match: ({ client, method, url }) => client === b.name && method === "GET" && url.includes("/sync/deltas"),
        times: 100,
      });
      try {
        await b.client.syncNow();
        for (const todo of written) {
          assertSameTodo(b.row("Todo", todo.id), todo, "bob after paged catch-up");
        }
        await waitHttp("every paged response to be logged", (log) =>
          log.filter((e) => e.client === b.name && e.injected), paged.hits.length);
        const pages = httpLog({ client: b.name, path: "/sync/deltas" })
          .filter((e) => e.injected)
          .map((e) => ({ after: new URL(e.url).searchParams.get("after"), body: JSON.parse(e.resBody) }));
        assert.equal(pages.length, 3, `7 actions by 3 make 3 pages: ${JSON.stringify(pages.map((p) => [p.after, p.body.hasMore, p.body.lastSyncId]))}`);
        assert.equal(pages[0].after, cursor, "first page starts at the client's cursor");
        for (let i = 1; i < pages.length; i += 1) {
          assert.equal(pages[i].after, pages[i - 1].body.lastSyncId, "each page starts after the previous page's lastSyncId");
          assert.equal(pages[i - 1].body.hasMore, true, "pages before the last say hasMore");
        }
        assert.equal(pages.at(-1).body.hasMore, false, "the last page says hasMore=false");
        assert.equal(b.lastSyncId, pages.at(-1).body.lastSyncId, "the client's cursor is the last page's lastSyncId");
      } finally {
        paged.remove();
      }
    });

    scenario("makes a workspace appear live when the user joins it (G action) and vanish when they leave", async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const carol = await pool.start({ node: nodeB(), user: "carol" });
      await a.waitLive();
      await carol.waitLive();
      const demoRows = (c) => [...c.rows("Todo").values()].filter((r) => r.workspaceId === WORKSPACE);
      assert.equal(demoRows(carol).length, 0, "carol starts without demo todos");
      let member = false;
      try {
        await cluster.admin("POST", "/admin/memberships", { groupId: WORKSPACE, userId: "carol" }, 0);
        member = true;
        // Every demo todo but alice's private one.
        const expected = idsOf(new Map([...a.rows("Todo")].filter(([, todo]) => visibleTo("carol")(todo))));
        await waitFor(
          "carol to receive every demo todo she may load after joining",
          () => expected.every((id) => carol.has("Todo", id)),
          { describe: () => ({ carol: idsOf(carol.rows("Todo")), expected }), timeout: 15_000 },
        );
        assert.deepEqual(idsOf(carol.rows("Label")), idsOf(a.rows("Label")), "carol received the demo labels");
        const g = carol.wsActions().find((x) => x.action === "G");
        assert.ok(g, "carol's socket carried a G action");
        assert.ok(
          g.data?.subscribedSyncGroups?.includes(WORKSPACE) && g.data.subscribedSyncGroups.includes("carol"),
          `G data.subscribedSyncGroups is the full new list: ${JSON.stringify(g.data)}`,
        );
        const [partial] = await waitHttp("carol's partial bootstrap of the added group", (log) =>
          log.filter((e) => e.client === carol.name && e.path === "/sync/bootstrap" && e.url.includes("type=partial")),
        );
        assert.equal(partial.status, 200, `partial bootstrap answered ${partial.status}: ${partial.resBody}`);
        await carol.waitLive();

        const fresh = fullTodo({ title: "after carol joined" });
        await a.client.create("Todo", fresh);
        await carol.waitRow("Todo", fresh.id, (r) => r !== null, "a new demo todo to reach carol live");
        assertSameTodo(carol.row("Todo", fresh.id), fresh, "carol");
        await a.settle();

        await cluster.admin("DELETE", "/admin/memberships", { groupId: WORKSPACE, userId: "carol" }, 0);
        member = false;
        await waitFor(
          "carol's demo rows to be dropped after leaving",
          () => demoRows(carol).length === 0 && carol.rows("Label").size === 0 && carol.rows("TodoLabel").size === 0,
          { describe: () => ({ labels: carol.rows("Label").size, todos: demoRows(carol).map((r) => r.id) }), timeout: 15_000 },
        );
        await carol.waitLive();
        const later = fullTodo({ title: "after carol left" });
        await a.client.create("Todo", later);
        await a.settle();
        const own = fullTodo({ owner: "carol", workspaceId: "carol" });
        await carol.client.create("Todo", own);
        await carol.settle();
        assert.ok(!carol.has("Todo", later.id), "a demo todo written after carol left does not reach her");
      } finally {
        if (member) {
          await cluster.admin("DELETE", "/admin/memberships", { groupId: WORKSPACE, userId: "carol" }, 0).catch(() => {});
        }
      }
    });

    scenario("delivers concurrent writes from both users to every client once, in id order", async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const b = await pool.start({ node: nodeB(), user: "bob" });
      const watcher = await pool.start({ name: "alice-watcher", node: nodeB(), user: "alice" });
      await Promise.all([a.waitLive(), b.waitLive(), watcher.waitLive()]);
      const marks = [a, b, watcher].map((c) => c.wsActions().length);
      const written = [];
      const writer = async (c, n) => {
        for (let i = 0; i < n; i += 1) {
          const todo = fullTodo({ owner: c.user, title: `${c.user} burst ${i}` });
          written.push(todo.id);
          await c.client.create("Todo", todo);
          if (i % 5 === 4) {
            await c.client.update("Todo", todo.id, { priority: 100 + i });
          }
        }
      };
      await Promise.all([writer(a, 25), writer(b, 25)]);
      await Promise.all([a.settle(30_000), b.settle(30_000)]);
      const expected = await cluster.sql(
        "SELECT id::text AS sync_id FROM sync_actions WHERE model_id = ANY($1) ORDER BY id",
        [written],
      );
      const expectedIds = expected.map((r) => r.sync_id);
      assert.equal(expectedIds.length, 60, "50 inserts and 10 updates were logged");
      for (const [i, c] of [a, b, watcher].entries()) {
        await waitFor(
          `${c.name} to receive all ${expectedIds.length} actions`,
          () => c.wsActions().slice(marks[i]).filter((x) => written.includes(x.modelId)).length >= expectedIds.length,
          { describe: () => c.wsActions().slice(marks[i]).length, timeout: 15_000 },
        );
        const got = c.wsActions().slice(marks[i]).filter((x) => written.includes(x.modelId)).map((x) => x.syncId);
        assert.deepEqual(got, expectedIds, `${c.name} received every action once, in ascending id order`);
        for (const id of written) {
          assert.ok(c.has("Todo", id), `${c.name} holds todo ${id}`);
        }
      }
    });

    scenario("queues writes while the server is down and applies them once after it restarts", 120_000, async () => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      const b = await pool.start({ node: nodeB(), user: "bob" });
      await a.waitLive();
      await b.waitLive();
      const doomed = fullTodo({ title: "deleted while offline" });
      await a.client.create("Todo", doomed);
      await a.settle();
      await b.waitRow("Todo", doomed.id, (r) => r !== null, "setup todo");

      await nodeA().stop({ signal: "SIGKILL" });
      const txIds = [];
      const t1 = fullTodo({ title: "offline 1" });
      const t2 = fullTodo({ dueOn: null, estimate: 10, title: "offline 2" });
      await a.client.create("Todo", t1, track(txIds));
      await a.client.create("Todo", t2, track(txIds));
      await a.client.update("Todo", t1.id, { priority: 9, title: "offline 1, edited" }, track(txIds));
      await a.client.delete("Todo", doomed.id, track(txIds));
      assert.equal(a.row("Todo", t1.id)?.title, "offline 1, edited", "the offline edit shows locally at once");
      await sleep(1500);
      assert.ok((await a.pending()) >= 4, `writes stay queued while the server is down: ${JSON.stringify(a.describe())}`);
      if (nodes > 1) {
        assert.ok(!b.has("Todo", t1.id), "bob (other node) cannot have the queued write yet");
      }

      await nodeA().start();
      await a.settle(60_000);
      await b.waitRow("Todo", t1.id, (r) => r?.title === "offline 1, edited", "offline writes at bob", 30_000);
      await b.waitRow("Todo", doomed.id, (r) => r === null, "offline delete at bob", 30_000);
      assertSameTodo(b.row("Todo", t1.id), { ...t1, priority: 9, title: "offline 1, edited" }, "bob");
      assertSameTodo(b.row("Todo", t2.id), t2, "bob");
      const counts = await countActionsByTxId(cluster, txIds);
      for (const txId of txIds) {
        assert.equal(counts.get(txId)?.n, 1, `offline transaction ${txId} applied exactly once (rows: ${JSON.stringify([...counts.values()])})`);
      }
      const { createdAt: _atA, archivedAt: _arA, ...rowA } = a.row("Todo", t1.id);
      const { createdAt: _atB, archivedAt: _arB, ...rowB } = b.row("Todo", t1.id);
      assert.deepEqual(rowB, rowA, "alice and bob agree on the todo written offline");
    });

    scenario("answers BOOTSTRAP_REQUIRED after the log is trimmed, and the client recovers by re-bootstrapping", async (t) => {
      const a = await pool.start({ node: nodeA(), user: "alice" });
      await a.waitLive();
      await a.client.create("Todo", fullTodo({ title: "before bob's nap" }));
      await a.settle();

      const bob1 = await pool.start({ name: "bob-before-trim", node: nodeB(), user: "bob" });
      await bob1.waitLive();
      await bob1.waitRow("Todo", [...a.rows("Todo").keys()][0], (r) => r !== null, "bob in sync");
      const cursor = bob1.lastSyncId;
      await bob1.stop();

      const written = [];
      for (let i = 0; i < 3; i += 1) {
        const todo = fullTodo({ title: `while bob was away ${i}` });
        written.push(todo);
        await a.client.create("Todo", todo);
      }
      await a.settle();
      const [{ max }] = await cluster.sql("SELECT max(id)::text AS max FROM sync_actions");
      assert.ok(BigInt(max) >= BigInt(cursor) + 3n, `log advanced past bob's cursor ${cursor} (max ${max})`);
      try {
        await cluster.admin("POST", "/admin/trim", { beforeSyncId: max }, 0);
      } catch (error) {
        if (!/HTTP 404/.test(error.message)) {
          throw error;
        }
        // Trimming is a table operation (PROTOCOL §10); without the dev route, do it directly.
        t.diagnostic(`POST /admin/trim is missing (${error.message}); trimmed sync_actions with SQL instead`);
        await cluster.sql("DELETE FROM sync_actions WHERE id < $1", [max]);
      }

      const stale = await apiGet(nodeB(), `/deltas?after=${cursor}`, "bob");
      assert.equal(stale.status, 409, `GET /sync/deltas?after=${cursor} after trim: ${stale.status} ${stale.text}`);
      assert.equal(JSON.parse(stale.text).error, "BOOTSTRAP_REQUIRED", stale.text);
      const wsAnswer = await rawSubscribe(nodeB(), "bob", cursor);
      assert.deepEqual(
        { code: wsAnswer.code, type: wsAnswer.type },
        { code: "BOOTSTRAP_REQUIRED", type: "error" },
        `subscribe afterSyncId=${cursor} after trim: ${JSON.stringify(wsAnswer)}`,
      );

      // Bob's app starts again on the same storage, with the stale cursor.
      //
      // The client (0.5.1) learns BOOTSTRAP_REQUIRED on two paths at once: the
      // WebSocket error frame and the 409 of its start-up REST catch-up. Both
      // run a recovery, and the REST one drops the reference to whatever delta
      // subscription is current without closing it, so when it finishes first
      // the next subscribe throws "WebSocketManager supports only one active
      // delta subscription" and the client stays without live deltas. That is a
      // client race whatever the server does; to keep this scenario about the
      // server, the REST catch-up with the stale cursor is lost on the network
      // (the client suppresses catch-up errors), and the 409 is checked above.
      const bob2 = pool.create({ dbName: bob1.dbName, name: "bob-after-trim", node: nodeB(), storage: bob1.storage, user: "bob" });
      const staleCatchUp = intercept({
        handle: () => {
          throw new TypeError("fetch failed (compat: stale catch-up dropped)");
        },
        match: ({ client, method, url }) =>
          client === bob2.name && method === "GET" && url.includes("/sync/deltas") && new URL(url).searchParams.get("after") === cursor,
        times: 1000,
      });
      t.after(() => staleCatchUp.remove());
      await bob2.start();
      await waitFor("bob to recover with every todo written while away", () => written.every((t) => bob2.has("Todo", t.id)), {
        describe: () => bob2.describe(),
        timeout: 20_000,
      });
      for (const todo of written) {
        assertSameTodo(bob2.row("Todo", todo.id), todo, "bob after re-bootstrap");
      }
      assert.ok(BigInt(bob2.lastSyncId) >= BigInt(max), `bob's cursor ${bob2.lastSyncId} reached ${max}`);
      await waitFor(
        "bob's client to have been told BOOTSTRAP_REQUIRED on its WebSocket",
        () => bob2.framesIn("error").some((f) => f.json.code === "BOOTSTRAP_REQUIRED"),
        { describe: () => bob2.frames.slice(-5).map((f) => f.text ?? f.dir) },
      );
      await waitHttp("bob's full re-bootstrap", (log) =>
        log.filter((e) => e.client === bob2.name && e.path === "/sync/bootstrap" && e.url.includes("type=full") && e.status === 200),
      );
      await bob2.waitLive();
      const live = fullTodo({ title: "after recovery" });
      await a.client.create("Todo", live);
      await bob2.waitRow("Todo", live.id, (r) => r !== null, "live delta after recovery");
    });
  });
};

