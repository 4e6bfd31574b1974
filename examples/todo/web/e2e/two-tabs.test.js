// End-to-end: the built page, served by the example server, in two tabs of
// headless Chromium, alice in one and bob in the other (same workspace).
// A todo created, renamed and deleted in alice's tab must show up in bob's
// within 1 s. Saves screenshots of both tabs side by side under e2e/artifacts/.
//
// Needs Debian's Chromium (/usr/bin/chromium, or E2E_CHROMIUM) and the example
// server binary (TODO_SERVER_BIN, else target/{release,debug}/todo-example
// built from this checkout; built with `cargo build -p todo-example` if none).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(webDir, "../../..");
const distDir = path.join(webDir, "dist");
const artifactsDir = path.join(webDir, "e2e", "artifacts");
const CHROMIUM = process.env.E2E_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** How quickly a change in one tab must be visible in the other. */
const LIVE_MS = 1000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const run = (command, args, cwd) => {
  const result = spawnSync(command, args, { cwd, stdio: "inherit" });
  if (result.status !== 0) {
    throw new Error(`\`${command} ${args.join(" ")}\` in ${cwd} failed (${result.error ?? `exit ${result.status}`})`);
  }
};

/**
 * The example binary serves the page from the `examples/todo/web/dist` of the
 * checkout it was compiled in (a path baked in at build time), so a binary
 * built from another worktree sharing the target directory would serve some
 * other page. Use one built from this checkout, building it if need be.
 */
const serverBinary = () => {
  const explicit = process.env.TODO_SERVER_BIN;
  if (explicit) {
    return path.resolve(explicit);
  }
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(repoRoot, "target");
  const candidates = ["release", "debug"].map((profile) => path.join(targetDir, profile, "todo-example"));
  const ours = (file) => fs.existsSync(file) && fs.readFileSync(file).includes(Buffer.from(distDir));
  let found = candidates.find(ours);
  if (!found) {
    console.log(`no todo-example built from this checkout (serving ${distDir}); running cargo build -p todo-example`);
    run("cargo", ["build", "-p", "todo-example"], repoRoot);
    found = candidates.find(ours);
    if (!found) {
      throw new Error(`cargo build -p todo-example did not produce a binary serving ${distDir} (looked at ${candidates.join(", ")})`);
    }
  }
  return found;
};

let tmpDir;
let server;
let serverLog = "";
let base;
let context;
const pageErrors = [];

const serverLogTail = () => serverLog.split("\n").slice(-25).join("\n");

before(async () => {
  fs.mkdirSync(artifactsDir, { recursive: true });
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set E2E_CHROMIUM)`);

  run("npm", ["run", "build"], webDir);
  const binary = serverBinary();

  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "stratasync-todo-web-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // One node on a fresh SQLite file; no Redis even when the caller's
  // environment names one.
  const { REDIS_URL: _redis, ...env } = process.env;
  server = spawn(binary, [], {
    cwd: tmpDir,
    env: {
      ...env,
      BIND: `127.0.0.1:${port}`,
      DATABASE_URL: `sqlite://${path.join(tmpDir, "todo.sqlite3")}`,
      TODO_ADMIN: "0",
      TODO_SEED: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logFile = fs.createWriteStream(path.join(artifactsDir, "server.log"));
  for (const stream of [server.stdout, server.stderr]) {
    stream.on("data", (chunk) => {
      serverLog += chunk;
      logFile.write(chunk);
    });
  }
  console.log(`server ${binary} on ${base}, data in ${tmpDir}`);

  const index = fs.readFileSync(path.join(distDir, "index.html"), "utf8");
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) {
      throw new Error(`the server exited (${server.exitCode}):\n${serverLogTail()}`);
    }
    try {
      const response = await fetch(`${base}/`);
      const body = await response.text();
      assert.equal(
        body,
        index,
        `GET / does not serve ${distDir}/index.html (a binary built elsewhere? set TODO_SERVER_BIN)`,
      );
      break;
    } catch (error) {
      if (error instanceof assert.AssertionError || Date.now() > deadline) {
        throw error;
      }
      await sleep(100);
    }
  }

  const userDataDir = path.join(tmpDir, "chromium-profile");
  context = await chromium.launchPersistentContext(userDataDir, {
    args: CHROMIUM_ARGS,
    executablePath: CHROMIUM,
    headless: true,
    viewport: { height: 560, width: 640 },
  });
});

after(async () => {
  await context?.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await Promise.race([new Promise((resolve) => server.once("exit", resolve)), sleep(3000)]);
    if (server.exitCode === null) {
      server.kill("SIGKILL");
    }
  }
  if (tmpDir) {
    fs.rmSync(tmpDir, { force: true, recursive: true });
  }
});

const openTab = async (user) => {
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${user}: ${error.stack ?? error}`));
  page.on("console", (message) => {
    if (message.type() === "error") {
      pageErrors.push(`${user} console: ${message.text()}`);
    }
  });
  await page.goto(`${base}/?user=${user}`);
  return page;
};

const titles = (page) => page.$$eval("[data-testid=todo-title]", (els) => els.map((el) => el.textContent));
const status = (page) => page.textContent("[data-testid=status]");

/**
 * Waits until `check(titles)` holds on `page`, at most `timeout` ms; returns
 * the elapsed time. On timeout the error shows what the page had.
 */
const waitForTitles = async (page, what, check, timeout) => {
  const started = Date.now();
  try {
    await page.waitForFunction(
      (source) => {
        const list = [...document.querySelectorAll("[data-testid=todo-title]")].map((el) => el.textContent);
        return new Function("titles", `return (${source})(titles)`)(list);
      },
      check.toString(),
      { polling: 10, timeout: Math.max(1, timeout) },
    );
  } catch (error) {
    throw new Error(
      `${what}: not seen within ${timeout} ms\n  titles: ${JSON.stringify(await titles(page))}\n` +
        `  status: ${await status(page)}\n  page errors: ${JSON.stringify(pageErrors)}\n` +
        `  server log:\n${serverLogTail()}\n  (${error.message.split("\n")[0]})`,
    );
  }
  return Date.now() - started;
};

/**
 * Prepares a change in one tab (`prepare`: typing, opening the editor), commits
 * it (`commit`: the Enter or click that makes the client write), then waits
 * until the other tab shows it (`check` on its titles). The clock starts at
 * the commit.
 */
const expectLive = async (what, prepare, commit, other, check) => {
  await prepare();
  const started = Date.now();
  await commit();
  await waitForTitles(other, what, check, LIVE_MS - (Date.now() - started));
  const elapsed = Date.now() - started;
  assert.ok(elapsed <= LIVE_MS, `${what}: took ${elapsed} ms`);
  console.log(`${what}: ${elapsed} ms`);
  return elapsed;
};

/** Screenshots of both tabs, composed side by side into one image. */
const screenshotPair = async (tabs, file) => {
  const shots = [];
  for (const [label, page] of tabs) {
    shots.push([label, (await page.screenshot()).toString("base64")]);
  }
  const sheet = await context.newPage();
  await sheet.setViewportSize({ height: 600, width: 1300 });
  await sheet.setContent(
    `<body style="margin:0;padding:8px;display:flex;gap:8px;background:#8c959f;font:14px system-ui">${shots
      .map(
        ([label, png]) =>
          `<figure style="margin:0"><figcaption style="color:#fff;padding:0 0 4px">${label}</figcaption>` +
          `<img style="display:block;border:1px solid #57606a" src="data:image/png;base64,${png}"></figure>`,
      )
      .join("")}</body>`,
  );
  const out = path.join(artifactsDir, file);
  await sheet.screenshot({ fullPage: true, path: out });
  await sheet.close();
  console.log(`screenshot: ${out}`);
  return out;
};

test("two tabs (alice and bob) stay in sync through the example server", async () => {
  const alice = await openTab("alice");
  const bob = await openTab("bob");

  // Both bootstrapped the seeded workspace and hold a live subscription.
  for (const [user, page] of [
    ["alice", alice],
    ["bob", bob],
  ]) {
    try {
      await page.waitForSelector("[data-testid=status][data-live=true]", { timeout: 15_000 });
    } catch {
      assert.fail(`${user}'s tab never went live: ${await status(page)}; page errors: ${JSON.stringify(pageErrors)}`);
    }
    await waitForTitles(page, `${user}: seeded todos`, (t) => t.includes("Ship the sync server"), 15_000);
  }
  // alice's seeded private todo loads in her tab only; the rest is shared.
  const PRIVATE = "Alice's private todo";
  const alicesInitial = await titles(alice);
  const initial = await titles(bob);
  assert.ok(alicesInitial.includes(PRIVATE), `alice loads her private todo: ${JSON.stringify(alicesInitial)}`);
  assert.ok(!initial.includes(PRIVATE), `bob does not load alice's private todo: ${JSON.stringify(initial)}`);
  const shared = async (page) => (await titles(page)).filter((t) => t !== PRIVATE);
  assert.deepEqual(await shared(alice), initial, "both tabs start from the same shared list");

  const suffix = Math.random().toString(36).slice(2, 7);
  const created = `Buy oat milk ${suffix}`;
  const renamed = `Buy oat milk and coffee ${suffix}`;

  await expectLive(
    "create in alice's tab, seen in bob's",
    () => alice.fill("[data-testid=new-title]", created),
    () => alice.press("[data-testid=new-title]", "Enter"),
    bob,
    new Function(`return (t) => t.includes(${JSON.stringify(created)})`)(),
  );

  const row = alice.locator("[data-testid=todo]", { hasText: created });
  await expectLive(
    "rename in alice's tab, seen in bob's",
    async () => {
      await row.getByTestId("edit").click();
      await alice.fill("[data-testid=edit-title]", renamed);
    },
    () => alice.press("[data-testid=edit-title]", "Enter"),
    bob,
    new Function(
      `return (t) => t.includes(${JSON.stringify(renamed)}) && !t.includes(${JSON.stringify(created)})`,
    )(),
  );
  assert.deepEqual(await titles(bob), await shared(alice), "both tabs show the same list after the rename");
  assert.deepEqual(await titles(bob), [...initial, renamed]);
  await screenshotPair(
    [
      ["alice (?user=alice): renamed the todo; her private todo (🔒) is hers alone", alice],
      ["bob (?user=bob): sees the rename live, not alice's private todo", bob],
    ],
    "two-tabs.png",
  );

  await expectLive(
    "delete in alice's tab, seen in bob's",
    () => alice.locator("[data-testid=todo]", { hasText: renamed }).getByTestId("delete").hover(),
    () => alice.locator("[data-testid=todo]", { hasText: renamed }).getByTestId("delete").click(),
    bob,
    new Function(`return (t) => !t.includes(${JSON.stringify(renamed)})`)(),
  );
  assert.deepEqual(await titles(alice), alicesInitial);
  assert.deepEqual(await titles(bob), initial);
  await screenshotPair(
    [
      ["alice: deleted it", alice],
      ["bob: gone here too", bob],
    ],
    "two-tabs-after-delete.png",
  );

  assert.deepEqual(pageErrors, [], "no errors in either tab");
});
