// What the browser tests run against: a `minizon` binary built from this
// repo (or MINIZON_BIN), started as `minizon dev` or as single services, and
// Debian's Chromium driven by playwright-core (no browser download).
import { spawn, execFileSync } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, chmodSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const repoRoot = resolve(import.meta.dirname, "..", "..");
/** Screenshots and server logs; not committed. */
export const outDir = join(repoRoot, "test-output", "storefront");
mkdirSync(outDir, { recursive: true });

let binary;
// Every process started, so that none outlives the test run, whatever fails
// (a live child would keep Node, and CI, waiting).
const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});
const logNames = new Map();

/** minizonBinary builds cmd/minizon once per test run, unless MINIZON_BIN is set. */
export function minizonBinary() {
  if (process.env.MINIZON_BIN) return process.env.MINIZON_BIN;
  if (!binary) {
    const dir = mkdtempSync(join(tmpdir(), "minizon-web-"));
    binary = join(dir, "minizon");
    execFileSync("go", ["build", "-o", binary, "./cmd/minizon"], { cwd: repoRoot, stdio: "inherit" });
  }
  return binary;
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * start runs `minizon <args>` with env added to this process's, logging to
 * test-output, and resolves once ready() says so. Its stdout is kept, for
 * the banner `minizon dev` prints.
 */
export async function start(name, args, env, ready) {
  const n = (logNames.get(name) ?? 0) + 1;
  logNames.set(name, n);
  const log = createWriteStream(join(outDir, `${name}-${n}.log`));
  const child = spawn(minizonBinary(), args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  child.stdout.on("data", (b) => {
    stdout += b;
    log.write(b);
  });
  child.stderr.pipe(log);
  const exited = new Promise((res) =>
    child.on("exit", (code, signal) => {
      children.delete(child);
      res({ code, signal });
    }),
  );
  const deadline = Date.now() + 90_000;
  for (;;) {
    const done = await Promise.race([exited, new Promise((res) => setTimeout(() => res(null), 250))]);
    if (done) throw new Error(`${name} exited (${JSON.stringify(done)}) before it was ready; see ${log.path}`);
    if (await ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${name} was not ready within 90s; see ${log.path}`);
    }
  }
  return {
    stdout: () => stdout,
    /** stop asks the process to shut down (SIGTERM) and waits until it has. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    },
    /** kill ends the process at once (SIGKILL), as a crash would, and waits until it has. */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** healthy says whether a miniZON server answers its health check. */
export async function healthy(base) {
  const res = await fetch(`${base}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  // grpc.health.v1's own enum spells it SERVING; connectrpc's grpchealth,
  // which served health before, SERVING_STATUS_SERVING.
  return res.ok && ["SERVING", "SERVING_STATUS_SERVING"].includes((await res.json()).status);
}

/**
 * startDev runs `minizon dev` on a free port with a throwaway data folder,
 * and returns its address, the Postgres server and the Kafka brokers it
 * printed.
 */
export async function startDev(env = {}) {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), "minizon-web-data-"));
  // As root, the embedded Postgres runs as the postgres user, which must be
  // able to enter the folder.
  chmodSync(data, 0o755);
  const base = `http://127.0.0.1:${port}`;
  const proc = await start("dev", ["dev"], { MINIZON_ADDR: `127.0.0.1:${port}`, MINIZON_DATA_DIR: data, ...env }, () =>
    healthy(base),
  );
  const banner = proc.stdout();
  const postgres = /^Postgres: (\S+)/m.exec(banner)?.[1];
  const brokers = /^Kafka brokers: \[([^\]]*)\]/m.exec(banner)?.[1].split(/\s+/).filter(Boolean).join(",");
  if (!postgres || !brokers) {
    await proc.stop();
    throw new Error(`minizon dev's banner has no Postgres or Kafka line:\n${banner}`);
  }
  return {
    base,
    port,
    banner,
    postgres,
    brokers,
    /** databaseURL is the URL of one service's database on dev's server. */
    databaseURL(name) {
      const u = new URL(postgres);
      u.pathname = `/${name}`;
      return u.toString();
    },
    async stop() {
      await proc.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** run runs a one-shot minizon command, such as `product import`. */
export function run(args, env) {
  return execFileSync(minizonBinary(), args, { env: { ...process.env, ...env }, encoding: "utf8", stdio: "pipe" });
}

/** launch starts headless Chromium with a fresh profile. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "minizon-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * watchPage collects what the page must never do: throw, or break its
 * Content-Security-Policy.
 */
export function watchPage(page) {
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy|Uncaught/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  return problems;
}

export function shot(page, name) {
  return page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
}
