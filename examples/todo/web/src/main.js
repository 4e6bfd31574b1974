// The todo demo: the real @stratasync/client (REST transport) against the
// example server that serves this page, on the same origin.
//
//   ?user=alice        the dev user (token `user:<id>`); alice and bob share
//                      the seeded workspace "demo", carol has none
//   ?workspace=demo    the workspace new todos go to
import { createSyncClient } from "@stratasync/client";
import { noopReactivityAdapter } from "@stratasync/core";
import { createGraphQLTransport } from "@stratasync/transport-graphql";
import { MemoryStorage } from "./memory-storage.js";
import { schema } from "./schema.ts";

const USERS = ["alice", "bob", "carol"];
const params = new URLSearchParams(location.search);
const user = params.get("user") || "alice";
const workspace = params.get("workspace") || "demo";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const listEl = $("todos");

document.title = `${user} · stratasync todos`;
$("workspace").textContent = `workspace ${workspace} · signed in as ${user}`;
for (const name of USERS) {
  const link = document.createElement("a");
  const next = new URLSearchParams(params);
  next.set("user", name);
  link.href = `?${next}`;
  link.textContent = name;
  if (name === user) {
    link.setAttribute("aria-current", "page");
  }
  $("users").append(link);
}

// "Live" = the server acknowledged our WebSocket subscription: from then on
// other users' changes arrive as they happen.
let live = false;
class LiveSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.addEventListener("message", (event) => {
      if (typeof event.data === "string" && event.data.includes('"subscribed"')) {
        try {
          if (JSON.parse(event.data).type === "subscribed") {
            live = true;
            scheduleRender();
          }
        } catch {
          /* not JSON: the client ignores it too */
        }
      }
    });
    this.addEventListener("close", () => {
      live = false;
      scheduleRender();
    });
  }
}

const wsScheme = location.protocol === "https:" ? "wss" : "ws";
const syncEndpoint = `${location.origin}/sync`;
const transport = createGraphQLTransport({
  auth: { getAccessToken: async () => `user:${user}` },
  endpoint: syncEndpoint,
  syncEndpoint,
  webSocketFactory: LiveSocket,
  wsEndpoint: `${wsScheme}://${location.host}/sync/ws`,
});
// The client rolls a refused write back silently; say why on the page.
const mutate = transport.mutate.bind(transport);
transport.mutate = async (batch) => {
  const result = await mutate(batch);
  const refused = result.results?.find((r) => r.success === false);
  if (refused) {
    lastError = `The server refused a change: ${refused.error ?? "no reason given"}`;
    scheduleRender();
  }
  return result;
};
const client = createSyncClient({
  dbName: `todo-web-${user}`,
  // The server keeps the write it commits last; so must the client's rebase
  // (README, "Concurrent writes").
  rebaseStrategy: "client-wins",
  reactivity: noopReactivityAdapter,
  schema,
  storage: new MemoryStorage(),
  transport,
  userId: user,
});
// For debugging from the console (and for the end-to-end test's failure reports).
window.demo = { client, user, workspace };

let pending = 0;
let lastError = null;
let editingId = null;
const rows = new Map(); // todo id -> <li>

const randomId = () => {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  // crypto.randomUUID needs a secure context (https or localhost).
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
};

const todos = () =>
  [...client.getIdentityMap("Todo").values()]
    .filter((t) => t.workspaceId === workspace && t.archivedAt == null)
    .sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0) || String(a.id).localeCompare(String(b.id)));

const run = async (what, action) => {
  try {
    lastError = null;
    await action();
  } catch (error) {
    lastError = `${what} failed: ${error?.message ?? error}`;
    console.error(lastError, error);
  }
  scheduleRender();
};

const button = (label, testId, onClick) => {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.testid = testId;
  b.addEventListener("click", onClick);
  return b;
};

const startEditing = (li, todo) => {
  editingId = todo.id;
  const form = document.createElement("form");
  form.dataset.testid = "edit-form";
  const input = document.createElement("input");
  input.value = todo.title;
  input.dataset.testid = "edit-title";
  input.required = true;
  form.append(input, button("Cancel", "cancel", () => stopEditing(li)));
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  save.dataset.testid = "save";
  form.append(save);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = input.value.trim();
    stopEditing(li);
    if (title && title !== client.getCached("Todo", todo.id)?.title) {
      run("Rename", () => client.update("Todo", todo.id, { title }));
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      stopEditing(li);
    }
  });
  li.querySelector(".view").hidden = true;
  li.append(form);
  input.focus();
  input.select();
};

const stopEditing = (li) => {
  editingId = null;
  li.querySelector("form")?.remove();
  li.querySelector(".view").hidden = false;
  scheduleRender();
};

const makeRow = (id) => {
  const li = document.createElement("li");
  li.dataset.id = id;
  li.dataset.testid = "todo";
  const view = document.createElement("span");
  view.className = "view";
  view.style.display = "contents";
  const done = document.createElement("input");
  done.type = "checkbox";
  done.dataset.testid = "done";
  done.addEventListener("change", () => {
    run("Update", () => client.update("Todo", id, { completedAt: done.checked ? Date.now() : null }));
  });
  const lock = document.createElement("span");
  lock.className = "private";
  lock.dataset.testid = "private";
  lock.title = "Private: only its owner loads it";
  lock.textContent = "🔒";
  const title = document.createElement("span");
  title.className = "title";
  title.dataset.testid = "todo-title";
  title.addEventListener("dblclick", () => startEditing(li, client.getCached("Todo", id)));
  view.append(
    done,
    lock,
    title,
    button("Edit", "edit", () => startEditing(li, client.getCached("Todo", id))),
    button("Delete", "delete", () => run("Delete", () => client.delete("Todo", id))),
  );
  li.append(view);
  return li;
};

const render = () => {
  const list = todos();
  const seen = new Set();
  let previous = null;
  for (const todo of list) {
    seen.add(todo.id);
    let li = rows.get(todo.id);
    if (!li) {
      li = makeRow(todo.id);
      rows.set(todo.id, li);
    }
    li.querySelector(".title").textContent = todo.title;
    li.querySelector(".private").hidden = todo.private !== true;
    li.querySelector("[data-testid=done]").checked = todo.completedAt != null;
    li.classList.toggle("done", todo.completedAt != null);
    // Move only rows that are out of place, so an open editor keeps its focus.
    const expected = previous ? previous.nextSibling : listEl.firstChild;
    if (expected !== li) {
      listEl.insertBefore(li, expected);
    }
    previous = li;
  }
  for (const [id, li] of rows) {
    if (!seen.has(id)) {
      if (id === editingId) {
        editingId = null;
      }
      li.remove();
      rows.delete(id);
    }
  }
  $("empty").hidden = list.length > 0 || client.state !== "syncing";

  const parts = [
    live ? "live" : client.connectionState,
    // "syncing" is the steady state; show the others (bootstrapping, error…).
    ...(client.state === "syncing" ? [] : [`client ${client.state}`]),
    `${list.length} todo${list.length === 1 ? "" : "s"}`,
    `sync id ${client.lastSyncId}`,
  ];
  if (pending > 0) {
    parts.push(`${pending} unsent`);
  }
  const error = lastError ?? (client.lastError ? String(client.lastError.message ?? client.lastError) : null);
  if (error) {
    parts.push(error);
    statusEl.dataset.error = "";
  } else {
    delete statusEl.dataset.error;
  }
  statusEl.textContent = parts.join(" · ");
  statusEl.dataset.live = String(live);
  statusEl.dataset.state = client.state;
  statusEl.dataset.lastSyncId = String(client.lastSyncId);
};

let renderQueued = false;
function scheduleRender() {
  if (!renderQueued) {
    renderQueued = true;
    // A microtask, not requestAnimationFrame: background tabs must keep up too.
    queueMicrotask(() => {
      renderQueued = false;
      render();
    });
  }
}

client.onEvent((event) => {
  if (event.type === "outboxChange") {
    pending = event.pendingCount;
  }
  scheduleRender();
});

$("new-todo").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("new-title");
  const title = input.value.trim();
  if (!title) {
    return;
  }
  const privateBox = $("new-private");
  const isPrivate = privateBox.checked;
  input.value = "";
  privateBox.checked = false;
  run("Create", () =>
    client.create("Todo", {
      archivedAt: null,
      completedAt: null,
      createdAt: Date.now(),
      dueOn: null,
      estimate: null,
      id: randomId(),
      notes: null,
      // The server makes the writer the owner.
      owner: user,
      priority: 0,
      private: isPrivate,
      title,
      workspaceId: workspace,
    }),
  );
});

render();
run("Start", () => client.start());
