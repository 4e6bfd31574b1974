// An in-memory StorageAdapter for @stratasync/client: no storage adapter is
// published for 0.5.1 (`@stratasync/storage-local` does not exist on npm), so
// the demo keeps its local copy in memory. A reload starts from a fresh
// bootstrap, which is what a demo wants anyway. Values are copied on the way
// in and out, as IndexedDB does. Data survives close()/open(), so the
// client-compatibility suite (tests/client-compat), which runs the client with
// this adapter, can restart a client on the same storage.
import { compareSyncId, isSyncIdGreaterThan } from "@stratasync/core";

const clone = (value) => (value === undefined ? undefined : structuredClone(value));
const defaultMeta = () => ({ lastSyncId: "0" });
const indexKey = (modelName, indexedKey, keyValue) => `${modelName}\u0000${indexedKey}\u0000${keyValue}`;

export class MemoryStorage {
  constructor() {
    this.models = new Map(); // modelName -> Map(id -> row)
    this.meta = defaultMeta();
    this.persistence = new Map(); // modelName -> { persisted, updatedAt }
    this.outbox = new Map(); // clientTxId -> transaction, in insertion order
    this.partialIndexes = new Set();
    this.syncActions = [];
    this.options = {};
  }

  table(modelName) {
    let table = this.models.get(modelName);
    if (!table) {
      table = new Map();
      this.models.set(modelName, table);
    }
    return table;
  }

  primaryKey(modelName) {
    const model = this.options.schema?.models?.[modelName];
    return model?.primaryKey ?? model?.meta?.primaryKey ?? "id";
  }

  async open(options) {
    this.options = options ?? {};
  }

  async close() {}

  async get(modelName, id) {
    return clone(this.table(modelName).get(id)) ?? null;
  }

  async getAll(modelName) {
    return [...this.table(modelName).values()].map(clone);
  }

  async put(modelName, row) {
    const id = row[this.primaryKey(modelName)];
    if (typeof id !== "string") {
      throw new Error(`MemoryStorage.put(${modelName}): row has no string id`);
    }
    this.table(modelName).set(id, clone(row));
  }

  async delete(modelName, id) {
    this.table(modelName).delete(id);
  }

  async getByIndex(modelName, indexName, key) {
    return [...this.table(modelName).values()].filter((row) => row[indexName] === key).map(clone);
  }

  async writeBatch(ops) {
    for (const op of ops) {
      if (op.type === "put") {
        await this.put(op.modelName, op.data);
      } else if (op.type === "delete") {
        await this.delete(op.modelName, op.id);
      }
    }
  }

  async getMeta() {
    return clone(this.meta);
  }

  async setMeta(meta) {
    this.meta = { ...this.meta, ...clone(meta) };
  }

  async getModelPersistence(modelName) {
    const entry = this.persistence.get(modelName);
    return { modelName, persisted: entry?.persisted ?? false, updatedAt: entry?.updatedAt };
  }

  async setModelPersistence(modelName, persisted) {
    this.persistence.set(modelName, { persisted, updatedAt: Date.now() });
  }

  async getOutbox() {
    return [...this.outbox.values()].map(clone);
  }

  async addToOutbox(tx) {
    this.outbox.set(tx.clientTxId, clone(tx));
  }

  async removeFromOutbox(clientTxId) {
    this.outbox.delete(clientTxId);
  }

  async updateOutboxTransaction(clientTxId, updates) {
    const existing = this.outbox.get(clientTxId);
    if (existing) {
      this.outbox.set(clientTxId, { ...existing, ...clone(updates) });
    }
  }

  async hasPartialIndex(modelName, indexedKey, keyValue) {
    return this.partialIndexes.has(indexKey(modelName, indexedKey, keyValue));
  }

  async setPartialIndex(modelName, indexedKey, keyValue) {
    this.partialIndexes.add(indexKey(modelName, indexedKey, keyValue));
  }

  async addSyncActions(actions) {
    const known = new Set(this.syncActions.map((a) => a.id));
    for (const action of actions) {
      if (!known.has(action.id)) {
        this.syncActions.push(clone(action));
      }
    }
    this.syncActions.sort((a, b) => compareSyncId(a.id, b.id));
  }

  async getSyncActions(afterSyncId = "0", limit = Number.POSITIVE_INFINITY) {
    return this.syncActions
      .filter((a) => isSyncIdGreaterThan(a.id, afterSyncId))
      .slice(0, limit)
      .map(clone);
  }

  async clearSyncActions() {
    this.syncActions = [];
  }

  async pruneSyncActions(beforeSyncId) {
    this.syncActions = this.syncActions.filter((a) => isSyncIdGreaterThan(a.id, beforeSyncId));
  }

  async clear(options = {}) {
    this.models.clear();
    this.meta = defaultMeta();
    this.persistence.clear();
    this.partialIndexes.clear();
    this.syncActions = [];
    if (!options.preserveOutbox) {
      this.outbox.clear();
    }
  }

  async count(modelName) {
    return this.table(modelName).size;
  }
}
