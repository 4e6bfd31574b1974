// The real @stratasync/client, wired the way an application would wire it in
// Node: REST transport (no GraphQL mutation builder), the example web client's
// in-memory storage and schema, and the no-op reactivity adapter.
import { createSyncClient } from "@stratasync/client";
import { noopReactivityAdapter } from "@stratasync/core";
import { createGraphQLTransport } from "@stratasync/transport-graphql";
// The example's own storage adapter and generated schema (examples/todo/web), so that
// this suite proves the web client the example ships.
import { MemoryStorage } from "../../../examples/todo/web/src/memory-storage.js";
import { schema } from "./generated-schema.js";
import { CLIENT_HEADER, installNetworkInstrumentation, recordingWebSocket } from "./network.js";
import { plain, waitFor } from "./util.js";

installNetworkInstrumentation();

/** Fast client-side retries so that failure scenarios finish quickly. */
const RETRY = { baseDelay: 150, jitter: 0.1, maxDelay: 1500, maxRetries: 4 };

let counter = 0;

/**
 * One application instance of the client for `user` against `node`.
 * Pass `storage` (and `dbName`) of an earlier instance to model a restart of
 * the same app on the same device.
 */
export class TestClient {
  constructor({ user, node, name, storage, dbName, wsEndpoint, groups, clientOptions }) {
    counter += 1;
    this.user = user;
    this.node = node;
    this.name = name ?? `${user}-${counter}`;
    this.dbName = dbName ?? `compat-${this.name}-${counter}`;
    this.storage = storage ?? new MemoryStorage();
    this.frames = [];
    this.events = [];
    this.transport = createGraphQLTransport({
      auth: { getAccessToken: async () => `user:${user}` },
      endpoint: node.syncEndpoint,
      headers: { [CLIENT_HEADER]: this.name },
      retry: RETRY,
      syncEndpoint: node.syncEndpoint,
      webSocketFactory: recordingWebSocket(this.name, this.frames),
      wsEndpoint: wsEndpoint ?? node.wsEndpoint,
    });
    this.client = createSyncClient({
      batchDelay: 20,
      dbName: this.dbName,
      groups,
      reactivity: noopReactivityAdapter,
      schema,
      storage: this.storage,
      transport: this.transport,
      userId: user,
      // Further createSyncClient options of a scenario (e.g. rebaseStrategy).
      ...clientOptions,
    });
    this.client.onEvent((event) => {
      if (event.type !== "outboxChange") {
        this.events.push({ at: Date.now(), ...event, error: event.error ? String(event.error) : undefined });
      }
    });
    this.started = false;
  }

  async start() {
    await this.client.start();
    this.started = true;
    return this;
  }

  async stop() {
    if (this.started) {
      this.started = false;
      await this.client.stop();
    }
  }

  /** Plain copies of the client's identity map for a model, by id. */
  rows(modelName) {
    const out = new Map();
    for (const [id, row] of this.client.getIdentityMap(modelName)) {
      out.set(id, plain(row));
    }
    return out;
  }

  row(modelName, id) {
    return plain(this.client.getCached(modelName, id));
  }

  has(modelName, id) {
    return this.client.getCached(modelName, id) !== null;
  }

  get lastSyncId() {
    return this.client.lastSyncId;
  }

  pending() {
    return this.client.getPendingCount();
  }

  describe(modelName) {
    return {
      client: this.name,
      lastError: this.client.lastError ? String(this.client.lastError) : null,
      lastSyncId: this.client.lastSyncId,
      outbox: [...this.storage.outbox.values()].map((tx) => ({
        action: tx.action,
        lastError: tx.lastError,
        modelId: tx.modelId,
        modelName: tx.modelName,
        state: tx.state,
        syncIdNeededForCompletion: tx.syncIdNeededForCompletion,
      })),
      rows: modelName ? [...this.rows(modelName).values()] : undefined,
      state: this.client.state,
    };
  }

  /** Waits until every local write is confirmed (the outbox is empty). */
  async settle(timeout = 15_000) {
    await waitFor(`${this.name}: outbox to drain`, async () => (await this.pending()) === 0, {
      describe: () => this.describe(),
      timeout,
    });
  }

  framesIn(type) {
    return this.frames.filter((f) => f.dir === "in" && f.json && (!type || f.json.type === type));
  }

  /** Every sync action this client received over its WebSocket. */
  wsActions() {
    return this.framesIn("delta").flatMap((f) => f.json.packet?.actions ?? []);
  }

  /** Waits until the server acknowledged the latest subscribe frame. */
  async waitLive(timeout = 10_000) {
    await waitFor(
      `${this.name}: WebSocket subscription acknowledged`,
      () => {
        const lastSubscribe = this.frames.findLastIndex((f) => f.dir === "out" && f.json?.type === "subscribe");
        if (lastSubscribe < 0) {
          return false;
        }
        return this.frames.slice(lastSubscribe + 1).some((f) => f.dir === "in" && f.json?.type === "subscribed");
      },
      {
        describe: () => ({ ...this.describe(), frames: this.frames.slice(-6).map((f) => f.text ?? f.dir) }),
        timeout,
      },
    );
  }

  /** Waits until `predicate(row)` holds for `modelName` / `id` (row is null when absent). */
  async waitRow(modelName, id, predicate, what, timeout = 10_000) {
    await waitFor(`${this.name}: ${what ?? `${modelName} ${id}`}`, () => predicate(this.row(modelName, id) ?? null), {
      describe: () => ({ row: this.row(modelName, id) ?? null, ...this.describe() }),
      timeout,
    });
    return this.row(modelName, id) ?? null;
  }
}

/** Keeps track of clients so each scenario can stop its own. */
export class ClientPool {
  constructor() {
    this.clients = [];
  }

  async start(options) {
    const c = new TestClient(options);
    this.clients.push(c);
    await c.start();
    return c;
  }

  create(options) {
    const c = new TestClient(options);
    this.clients.push(c);
    return c;
  }

  async stopAll() {
    const clients = this.clients.splice(0);
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  }
}
