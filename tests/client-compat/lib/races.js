// The two races behind the divergences the convergence property found
// (issue 19), each made deterministic by holding one client's mutate request
// until another client's conflicting write has reached it:
//
// 1. a write to a row another client deleted: the server answers it with the
//    delete's syncId and the client drops the row; the client's own rollback
//    of a "record not found" (what the server used to answer) resurrects it;
// 2. two updates of one field: with the client's default rebase strategy
//    (server-wins) the client keeps the other value while the server applied
//    its own later; with `rebaseStrategy: "client-wins"` it converges;
// 3. a link of a pair another client linked, answered after a later action
//    on the pair reached the client (the other client's unlink, or its new
//    link after the client's own unlink): the server logs the relink, so the
//    client settles it by its own delta, in log order;
// 4. an unlink of a pair another client unlinked, sent with a new link of it,
//    answered after the link's delta reached the client: the server logs the
//    moot unlink as a delete of its own, so the client settles it by its own
//    delta before the link's, instead of re-applying it over the link.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import { intercept } from "./network.js";
import { serverRows } from "./convergence.js";
import { compositeId, waitFor } from "./util.js";

/**
 * Holds `client`'s next mutate request until `release()`;
 * `answer(response, init)` may replace the server's answer.
 */
const holdMutate = (client, answer) => {
  let release;
  const gate = new Promise((resolve) => {
    release = resolve;
  });
  const rule = intercept({
    handle: async ({ forward, init }) => {
      await gate;
      const response = await forward();
      return answer ? answer(response, init) : response;
    },
    match: ({ client: name, method, url }) => name === client.name && method === "POST" && url.endsWith("/sync/mutate"),
  });
  return { release, rule };
};

/**
 * Holds `client`'s next mutate request until `send()`, then the server's
 * answer to it until `answer()`.
 */
const holdRequestAndAnswer = (client) => {
  const gate = () => {
    let open;
    const promise = new Promise((resolve) => {
      open = resolve;
    });
    return { open, promise };
  };
  const [sending, answering] = [gate(), gate()];
  const rule = intercept({
    handle: async ({ forward }) => {
      await sending.promise;
      const response = await forward();
      await answering.promise;
      return response;
    },
    match: ({ client: name, method, url }) => name === client.name && method === "POST" && url.endsWith("/sync/mutate"),
  });
  return { answer: answering.open, rule, send: sending.open };
};

/** Turns the server's results for `modelId` into the old answer, "record not found". */
const recordNotFoundFor = (modelId) => async (response, init) => {
  const body = await response.json();
  const ids = new Set(JSON.parse(init.body).transactions.filter((tx) => tx.modelId === modelId).map((tx) => tx.clientTxId));
  body.results = body.results.map((r) =>
    ids.has(r.clientTxId) ? { clientTxId: r.clientTxId, error: "Invalid mutation: record not found", success: false } : r,
  );
  return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" }, status: 200 });
};

/**
 * Registers the race scenarios. `fresh(label, clientOptions)` makes a new
 * workspace and starts two of its clients, a on node 1 and b on the last node.
 */
export const defineRaces = ({ cluster, fresh }) => {
  /** b's write of `id` is held in flight until a's delete of `id` has reached b. */
  const deleteReachesBFirst = async ({ a, b, id, write, answer }) => {
    const held = holdMutate(b, answer);
    try {
      await write();
      await waitFor("b's write to be sent", () => held.rule.hits.length > 0);
      await a.client.delete("Todo", id);
      await a.settle();
      await b.waitRow("Todo", id, (r) => r === null, "a's delete to reach b while b's write is in flight");
    } finally {
      held.release();
    }
    await waitFor("b's held write to be answered", () => held.rule.hits[0]?.forwardedStatus !== undefined);
  };

  it("a write racing another client's delete leaves the row deleted (the server answers the delete)", { timeout: 60_000 }, async () => {
    const { a, b, workspaceId } = await fresh("race-delete");
    const rows = [];
    for (const title of ["updated", "archived", "deleted"]) {
      const id = randomUUID();
      rows.push(id);
      await a.client.create("Todo", { createdAt: Date.now(), id, priority: 0, title, workspaceId });
    }
    await a.settle();
    for (const id of rows) {
      await b.waitRow("Todo", id, (r) => r !== null, "the todo to reach b");
    }
    const [updated, archived, deleted] = rows;
    await deleteReachesBFirst({ a, b, id: updated, write: () => b.client.update("Todo", updated, { title: "too late" }) });
    await deleteReachesBFirst({ a, b, id: archived, write: () => b.client.archive("Todo", archived) });
    await deleteReachesBFirst({ a, b, id: deleted, write: () => b.client.delete("Todo", deleted) });
    await b.settle();
    const server = await serverRows(cluster.node(0), a.user, workspaceId);
    for (const id of rows) {
      assert.ok(!server.Todo.has(id), "the server deleted the todo");
      assert.equal(b.row("Todo", id) ?? null, null, `b must not bring todo ${id} back: ${JSON.stringify(b.describe("Todo"))}`);
    }
  });

  it(
    "client defect (@stratasync/client 0.5.1): a 'record not found' for a write to a row whose delete the client applied brings the row back",
    { timeout: 60_000 },
    async () => {
      // The mechanism: the delete's delta drops b's in-flight update from the
      // outbox (update-delete conflict) and deletes the row; the rejection then
      // reaches OutboxManager.handleMutateResult, whose onTransactionRejected
      // runs rollbackTransaction, which for a "U" whose row is not in the
      // identity map does map.set(modelId, original): the row reappears (with
      // only the fields the update changed) and no later delta removes it.
      // This is why the server answers such writes with the delete's syncId.
      const { a, b, workspaceId } = await fresh("defect-resurrect");
      const id = randomUUID();
      await a.client.create("Todo", { createdAt: Date.now(), id, priority: 0, title: "doomed", workspaceId });
      await a.settle();
      await b.waitRow("Todo", id, (r) => r !== null, "the todo to reach b");
      await deleteReachesBFirst({ a, b, answer: recordNotFoundFor(id), id, write: () => b.client.update("Todo", id, { title: "too late" }) });
      await b.waitRow(
        "Todo",
        id,
        (r) => r !== null,
        "the client's rollback to resurrect the row (if this times out, the client no longer has the defect: drop this reproduction)",
      );
      assert.deepEqual(b.row("Todo", id), { title: "doomed" }, "the resurrected row holds what the update changed, from its original");
    },
  );

  /** A delta with `action` on `modelId` has reached `client`. */
  const reached = (client, modelId, action) => () =>
    client.wsActions().some((x) => x.modelId === modelId && x.action === action);

  /** A workspace where a has made a todo and a label and b holds both; and the composite id of their link. */
  const linkable = async (name) => {
    const { a, b, workspaceId } = await fresh(name, { rebaseStrategy: "client-wins" });
    const todo = { createdAt: Date.now(), id: randomUUID(), priority: 0, title: "linked", workspaceId };
    const label = { color: "#123456", id: randomUUID(), name: "shared", workspaceId };
    await a.client.create("Todo", todo);
    await a.client.create("Label", label);
    await a.settle();
    await b.waitRow("Label", label.id, (r) => r !== null, "the label to reach b");
    const id = compositeId("TodoLabel", [todo.id, label.id]);
    const link = () => ({ createdAt: Date.now(), id, labelId: label.id, todoId: todo.id, workspaceId });
    return { a, b, id, link, workspaceId };
  };

  /** The pair `id` as the server holds it once b is at the log head of `workspaceId`. */
  const settledPair = async ({ a, b, id, workspaceId }) => {
    await b.settle();
    const [{ head }] = await cluster.sql("SELECT max(id)::text AS head FROM sync_actions WHERE group_id = $1", [workspaceId]);
    await waitFor("b to reach the log head", () => BigInt(b.lastSyncId) >= BigInt(head));
    return (await serverRows(cluster.node(0), a.user, workspaceId)).TodoLabel.get(id) ?? null;
  };

  // b re-applies a pending insert after every packet until the insert is
  // settled. Answered without a syncId (a moot success, or a refusal), a
  // link settled only when its answer came, after later deltas on the pair
  // had been applied; the logged relink settles it by its own delta, in
  // order (docs/protocol.md, "Moot writes").
  it("a link of a pair another client linked, answered after that client's unlink reached it, leaves the pair unlinked", { timeout: 60_000 }, async () => {
    const { a, b, id, link, workspaceId } = await linkable("race-relink");
    const held = holdRequestAndAnswer(b);
    try {
      await b.client.create("TodoLabel", link());
      await waitFor("b's link to be sent", () => held.rule.hits.length > 0);
      await a.client.create("TodoLabel", link());
      await a.settle();
      await waitFor("a's link to reach b", reached(b, id, "I"));
      held.send();
      await waitFor("the server to answer b's link", () => held.rule.hits[0]?.forwardedStatus !== undefined);
      await a.client.delete("TodoLabel", id);
      await a.settle();
      await waitFor("a's unlink to reach b while b's answer is held", reached(b, id, "D"));
    } finally {
      held.send();
      held.answer();
      held.rule.remove();
    }
    assert.equal(await settledPair({ a, b, id, workspaceId }), null, "a unlinked the pair last");
    assert.equal(b.row("TodoLabel", id) ?? null, null, `b must not keep the pair: ${held.rule.hits[0]?.forwardedBody}`);
  });

  it("a link and its unlink in one request, of a pair another client linked and links again, leave the pair linked", { timeout: 60_000 }, async () => {
    const { a, b, id, link, workspaceId } = await linkable("race-link-unlink");
    const held = holdRequestAndAnswer(b);
    try {
      await b.client.create("TodoLabel", link());
      await b.client.delete("TodoLabel", id);
      await waitFor("b's link and unlink to be sent", () => held.rule.hits.length > 0);
      await a.client.create("TodoLabel", link());
      await a.settle();
      await waitFor("a's link to reach b", reached(b, id, "I"));
      held.send();
      await waitFor("the server to answer b's link and unlink", () => held.rule.hits[0]?.forwardedStatus !== undefined);
      await a.waitRow("TodoLabel", id, (r) => r === null, "b's unlink to reach a");
      await a.client.create("TodoLabel", link());
      await a.settle();
      await waitFor("a's second link to reach b while b's answer is held", () => b.wsActions().filter((x) => x.modelId === id && x.action === "I").length >= 2);
    } finally {
      held.send();
      held.answer();
      held.rule.remove();
    }
    assert.notEqual(await settledPair({ a, b, id, workspaceId }), null, "a linked the pair last");
    assert.notEqual(b.row("TodoLabel", id) ?? null, null, `b must hold the pair: ${held.rule.hits[0]?.forwardedBody}`);
  });

  it("an unlink of a pair another client unlinked, sent with a new link of it, leaves the pair linked", { timeout: 60_000 }, async () => {
    const { a, b, id, link, workspaceId } = await linkable("race-moot-unlink-link");
    await a.client.create("TodoLabel", link());
    await a.settle();
    await waitFor("a's link to reach b", reached(b, id, "I"));
    const held = holdRequestAndAnswer(b);
    try {
      await b.client.delete("TodoLabel", id);
      await b.client.create("TodoLabel", link());
      await waitFor("b's unlink and link to be sent", () => held.rule.hits.length > 0);
      await a.client.delete("TodoLabel", id);
      await a.settle();
      await waitFor("a's unlink to reach b", reached(b, id, "D"));
      held.send();
      await waitFor("the server to answer b's unlink and link", () => held.rule.hits[0]?.forwardedStatus !== undefined);
      await waitFor("b's link to reach b while b's answer is held", () => b.wsActions().filter((x) => x.modelId === id && x.action === "I").length >= 2);
    } finally {
      held.send();
      held.answer();
      held.rule.remove();
    }
    assert.notEqual(await settledPair({ a, b, id, workspaceId }), null, "b linked the pair last");
    assert.notEqual(b.row("TodoLabel", id) ?? null, null, `b must hold the pair: ${held.rule.hits[0]?.forwardedBody}`);
  });

  /** a and b update one field of one todo; b's update is sent first but applied last. */
  const updateUpdate = async (options) => {
    const { a, b, workspaceId } = await fresh(`update-update-${options.rebaseStrategy ?? "default"}`, options);
    const id = randomUUID();
    await a.client.create("Todo", { createdAt: Date.now(), id, priority: 0, title: "first", workspaceId });
    await a.settle();
    await b.waitRow("Todo", id, (r) => r !== null, "the todo to reach b");
    const held = holdMutate(b);
    try {
      await b.client.update("Todo", id, { title: "b's" });
      await waitFor("b's update to be sent", () => held.rule.hits.length > 0);
      await a.client.update("Todo", id, { title: "a's" });
      await a.settle();
      await waitFor("a's update to reach b", () =>
        b.framesIn("delta").some((f) => f.json.packet?.actions?.some((x) => x.modelId === id && x.data?.title === "a's")),
      );
    } finally {
      held.release();
    }
    // b's outbox may be empty already (its transaction was rebased away): wait for the answer.
    await waitFor("b's held update to be answered", () => held.rule.hits[0]?.forwardedStatus !== undefined);
    await b.settle();
    const [{ head }] = await cluster.sql("SELECT max(id)::text AS head FROM sync_actions WHERE group_id = $1", [workspaceId]);
    await waitFor("b to reach the log head", () => BigInt(b.lastSyncId) >= BigInt(head));
    const server = await serverRows(cluster.node(0), a.user, workspaceId);
    assert.equal(server.Todo.get(id).title, "b's", "the server applied b's update last");
    return b.row("Todo", id).title;
  };

  it(
    "client defect (@stratasync/client 0.5.1): with the default rebaseStrategy a client keeps another client's value after its own later update was applied",
    { timeout: 60_000 },
    async () => {
      // The mechanism: a's update reaches b while b's own update of the same
      // field is in flight; the server-wins rebase drops b's transaction from
      // the outbox storage but not from OutboxManager.localClientTxIds, so when
      // b's update (applied after a's) comes back as a delta, applyDeltaPacket
      // takes it for b's optimistic echo and skips it: b shows a's value for
      // good. No server answer can change that: the server must apply writes
      // in commit order, and b's delta must carry b's clientTxId.
      const title = await updateUpdate({});
      assert.equal(title, "a's", "if b now shows b's, the client no longer has the defect: drop this reproduction");
    },
  );

  it("with rebaseStrategy client-wins (what docs/protocol.md recommends) the same race converges", { timeout: 60_000 }, async () => {
    assert.equal(await updateUpdate({ rebaseStrategy: "client-wins" }), "b's");
  });
};
