// The miniZON storefront: one page over Checkout, LOMS and ProductService.
//
// State lives in plain objects. Panels are built once and updated in place
// (a product card, an order card), so that live status changes and the
// answers arriving one by one never replace a button under the pointer or
// an input being typed in. Loads are "latest wins": an answer that a newer
// request, a page turn, a user switch or a change of connection has made
// stale is dropped instead of shown. An order's status only moves forward,
// so of two answers about it the later stage wins, whatever their order.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import "./style.css";
import { describe, newAPI, type API, type ShownError } from "./api.js";
import { showCountdown } from "./countdown.js";
import { h, mount, type Child } from "./dom.js";
import { count, hue, isFinal, isOpen, money, newer, parseId, statusLabel, statusName } from "./format.js";
import type { CartItem } from "./gen/minizon/checkout/v1/checkout_pb.js";
import { OrderStatus, type OrderItem, type Stock } from "./gen/minizon/loms/v1/loms_pb.js";
import { History } from "./history.js";
import { checkSettings, defaultSettings, loadSettings, normalize, saveSettings, type Settings } from "./settings.js";
import { WatchPool, watchOrder, type Live } from "./watch.js";

const pageSize = 12;
// Open orders watched at once (see WatchPool): three streams leave three of
// the browser's six HTTP/1.1 connections to a host for everything else.
const maxWatches = 3;

interface Product {
  name: string;
  price: number;
}

interface Order {
  status?: OrderStatus;
  user?: bigint;
  items: OrderItem[];
  /** The end of the payment window. */
  payBy?: Date;
  /** Why the last read failed, until one succeeds. */
  error?: ShownError;
  /** LOMS does not know it (not_found): it is not asked again. */
  gone?: boolean;
  /** Where its status stream stands, while it is open. */
  live?: Live;
  /** What ended the last stream, while reconnecting. */
  liveReason?: ShownError;
  /** Why LOMS will not stream its status (a failure no retry fixes). */
  unwatchable?: ShownError;
}

interface Failure extends ShownError {
  id: number;
  /** What the page was doing, e.g. "Pay order 12". */
  action: string;
  /** Not an error: something to know, such as an order that failed. */
  notice?: boolean;
}

const loaded = loadSettings(location, localStorage, sessionStorage);
const state = {
  settings: loaded.settings,
  user: parseId(localStorage.getItem("minizon.user") ?? "") ?? 1n,
  // pageStarts[i] is the start_after_sku of page i; page 0 starts at 0.
  pageStarts: [0],
  page: 0,
  skus: [] as number[],
  hasNext: false,
  catalog: "loading" as "loading" | "ready" | "failed",
  products: new Map<number, Product | ShownError>(),
  stocks: new Map<number, Stock[] | ShownError>(),
  cart: null as { items: CartItem[]; total: bigint } | null,
  cartFailed: false,
  orders: new Map<bigint, Order>(),
  failures: [] as Failure[],
  busy: new Set<string>(),
};
let api: API = newAPI(state.settings);
// gen counts connection changes: answers from an older API are dropped.
let gen = 0;
let pageSeq = 0;
let cartSeq = 0;
const orderSeq = new Map<bigint, number>();
const stockSeq = new Map<number, number>();
// Orders with a read in flight: a stream that finds an order without its
// items does not ask for them twice.
const reading = new Set<bigint>();
let nextFailureId = 1;
// Orders looked up by id that belong to another user are shown until the
// user changes, but not remembered.
const lookedUp = new Set<bigint>();

// ---- the page's frame ------------------------------------------------------

const app = document.querySelector<HTMLDivElement>("#app")!;
const header = h("header", { class: "topbar" });
const failures = h("section", { class: "failures", "data-testid": "errors", "aria-live": "polite" });
const pager = h("div", { class: "pager" });
const grid = h("div", {});
const catalog = h(
  "section",
  { class: "panel catalog", "data-testid": "catalog", "aria-label": "Catalog" },
  h("div", { class: "panel-head" }, h("h2", {}, "Catalog"), pager),
  grid,
);
const cart = h("section", { class: "panel cart", "data-testid": "cart", "aria-label": "Cart" });
const findInput = h("input", {
  type: "text",
  inputmode: "numeric",
  placeholder: "Order id",
  "aria-label": "Order id",
  "data-testid": "find-order-input",
});
const orderList = h("div", {});
const orders = h(
  "section",
  { class: "panel orders", "data-testid": "orders", "aria-label": "Orders" },
  h("div", { class: "panel-head" }, h("h2", {}, "Orders")),
  h(
    "form",
    {
      class: "find",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void findOrder(findInput.value);
      },
    },
    findInput,
    h("button", { type: "submit", class: "ghost", "data-testid": "find-order", "data-busy-key": "find" }, "Find"),
  ),
  orderList,
);
const orderHistory = new History({
  api: () => api,
  user: () => state.user,
  productName,
  loadProducts: (skus) => loadProducts(skus),
  statusOf: (id) => state.orders.get(id)?.status,
  fail: (action, e) => fail(action, e),
});
mount(app, header, failures, h("main", { class: "layout" }, catalog, h("aside", { class: "side" }, cart, orders, orderHistory.root)));

// ---- actions and errors ----------------------------------------------------

/**
 * run performs one user action against the service at baseUrl: the buttons
 * marked with its key are disabled while it runs (so it cannot be sent
 * twice), and a failure is shown with its Connect code, never swallowed. fn
 * is told whether the connection is still the one it started on: after a
 * change, it must stop applying answers. run says whether the action
 * succeeded.
 */
async function run(key: string, action: string, baseUrl: string, fn: (live: () => boolean) => Promise<void>): Promise<boolean> {
  if (state.busy.has(key)) return false;
  const g = gen;
  const live = () => g === gen;
  state.busy.add(key);
  refreshBusy();
  try {
    await fn(live);
    return live();
  } catch (err) {
    if (live()) fail(action, describe(err, baseUrl));
    return false;
  } finally {
    state.busy.delete(key);
    refreshBusy();
  }
}

/** refreshBusy disables the buttons of actions in flight. */
function refreshBusy(): void {
  for (const el of document.querySelectorAll<HTMLButtonElement>("button[data-busy-key]")) {
    const busy = state.busy.has(el.dataset.busyKey!);
    el.disabled = busy || el.dataset.blocked === "true";
    el.toggleAttribute("aria-busy", busy);
  }
  const purchase = cart.querySelector<HTMLButtonElement>('[data-testid="purchase"]');
  if (purchase) purchase.textContent = state.busy.has("purchase") ? "Placing the order…" : "Purchase";
}

function fail(action: string, e: ShownError, notice = false): void {
  state.failures.unshift({ ...e, action, notice, id: nextFailureId++ });
  state.failures.length = Math.min(state.failures.length, 5);
  renderFailures();
}

/** invalid reports a check the page made itself: nothing was sent. */
function invalid(action: string, message: string): void {
  fail(action, { code: "", message, hint: "Checked in the page; nothing was sent." });
}

// ---- catalog ---------------------------------------------------------------

async function loadPage(): Promise<void> {
  const seq = ++pageSeq;
  const g = gen;
  state.catalog = "loading";
  renderPager();
  try {
    const res = await api.product.listSkus({
      token: state.settings.token,
      startAfterSku: state.pageStarts[state.page],
      count: pageSize,
    });
    if (seq !== pageSeq || g !== gen) return;
    state.skus = res.skus;
    state.hasNext = res.skus.length === pageSize;
    state.catalog = "ready";
  } catch (err) {
    if (seq !== pageSeq || g !== gen) return;
    state.skus = [];
    state.hasNext = false;
    state.catalog = "failed";
    fail("Load the catalog", describe(err, state.settings.product));
  }
  renderPager();
  renderGrid();
  await Promise.all([loadProducts(state.skus), ...state.skus.map(loadStock)]);
}

/** loadProducts fetches the names and prices the page does not know yet. */
async function loadProducts(skus: Iterable<number>): Promise<void> {
  const g = gen;
  const missing = [...new Set(skus)].filter((sku) => {
    const p = state.products.get(sku);
    return !p || !("name" in p);
  });
  await Promise.all(
    missing.map(async (sku) => {
      let p: Product | ShownError;
      try {
        const res = await api.product.getProduct({ token: state.settings.token, sku });
        p = { name: res.name, price: res.price };
      } catch (err) {
        p = describe(err, state.settings.product);
      }
      if (g !== gen) return;
      state.products.set(sku, p);
      updateCard(sku);
      renderProductNames(sku);
    }),
  );
}

async function loadStock(sku: number): Promise<void> {
  const g = gen;
  const seq = (stockSeq.get(sku) ?? 0) + 1;
  stockSeq.set(sku, seq);
  let s: Stock[] | ShownError;
  try {
    s = (await api.loms.stocks({ sku })).stocks;
  } catch (err) {
    s = describe(err, state.settings.loms);
  }
  if (g !== gen || stockSeq.get(sku) !== seq) return;
  state.stocks.set(sku, s);
  updateCard(sku);
}

function productName(sku: number): string {
  const p = state.products.get(sku);
  return p && "name" in p ? p.name : `sku ${sku}`;
}

// ---- cart ------------------------------------------------------------------

/** loadCart shows the current user's cart; it reports its own failure. */
async function loadCart(): Promise<void> {
  const seq = ++cartSeq;
  const g = gen;
  try {
    const res = await api.checkout.listCart({ user: state.user });
    if (seq !== cartSeq || g !== gen) return;
    state.cart = { items: res.items, total: res.totalPrice };
    state.cartFailed = false;
  } catch (err) {
    if (seq !== cartSeq || g !== gen) return;
    state.cartFailed = true;
    fail("Load the cart", describe(err, state.settings.checkout));
  }
  renderCart();
}

/**
 * changeCart runs one change of the cart as an action. A change that failed
 * may still have been applied (a timeout after the server's commit): the
 * cart is read again either way.
 */
async function changeCart(key: string, action: string, change: () => Promise<unknown>): Promise<void> {
  await run(key, action, state.settings.checkout, async () => {
    try {
      await change();
    } finally {
      await loadCart();
    }
  });
}

async function addToCart(sku: number, n: number): Promise<void> {
  await changeCart(`add-${sku}`, `Add ${n} × ${productName(sku)} to the cart`, () =>
    api.checkout.addToCart({ user: state.user, sku, count: n }),
  );
}

async function removeFromCart(sku: number, n: number): Promise<void> {
  await changeCart(`del-${sku}`, `Remove ${n} × ${productName(sku)} from the cart`, () =>
    api.checkout.deleteFromCart({ user: state.user, sku, count: n }),
  );
}

/**
 * placeOrder calls Purchase, once more if the answer was lost on the way
 * (timeout, network): Purchase is idempotent, so the second call answers
 * with the order the first one made, if it made one.
 */
async function placeOrder(user: bigint) {
  try {
    return await api.checkout.purchase({ user });
  } catch (err) {
    const code = ConnectError.from(err).code;
    if (code !== Code.DeadlineExceeded && code !== Code.Unavailable && code !== Code.Unknown) throw err;
    return await api.checkout.purchase({ user });
  }
}

async function purchase(): Promise<void> {
  const user = state.user;
  const skus = state.cart?.items.map((i) => i.sku) ?? [];
  let placed: { id: bigint; status: OrderStatus } | undefined;
  // The cart is reloaded inside the action, so Purchase stays disabled
  // until the emptied cart is on screen.
  // Orders are filed under the LOMS they were placed with, even if the
  // connection changes before the answer.
  const loms = state.settings.loms;
  const ok = await run("purchase", "Purchase", state.settings.checkout, async (live) => {
    try {
      const res = await placeOrder(user);
      rememberOrder(user, res.orderId, loms);
      if (!live()) return;
      placed = { id: res.orderId, status: res.status };
      setOrder(res.orderId, { status: res.status, user, items: [] });
      renderOrderList();
    } finally {
      await loadCart();
    }
  });
  if (!ok || !placed) return;
  if (placed.status === OrderStatus.FAILED) {
    fail(
      "Purchase",
      { code: "", message: `Order ${placed.id} failed: the warehouses could not reserve every item. Your cart is as it was.` },
      true,
    );
  }
  await Promise.all([
    refreshOrder(placed.id, "report"),
    orderHistory.refresh(),
    ...skus.filter((s) => state.skus.includes(s)).map(loadStock),
  ]);
}

// ---- orders ----------------------------------------------------------------

function ordersKey(user: bigint, loms: string): string {
  // Order ids belong to one LOMS: another one's order 1 is someone else's.
  return `minizon.orders.${normalize(loms)}.${user}`;
}

function rememberedOrders(user = state.user, loms = state.settings.loms): bigint[] {
  try {
    const ids = JSON.parse(localStorage.getItem(ordersKey(user, loms)) ?? "[]") as unknown[];
    return ids.map((s) => parseId(String(s))).filter((id): id is bigint => id !== null);
  } catch {
    return [];
  }
}

function rememberOrder(user: bigint, id: bigint, loms = state.settings.loms): void {
  const ids = [id, ...rememberedOrders(user, loms).filter((o) => o !== id)].slice(0, 20);
  localStorage.setItem(ordersKey(user, loms), JSON.stringify(ids.map(String)));
}

function shownOrders(): bigint[] {
  return [...new Set([...lookedUp, ...rememberedOrders()])].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
}

/** beginRead numbers a read of order id; answers of older reads are stale. */
function beginRead(id: bigint): number {
  const seq = (orderSeq.get(id) ?? 0) + 1;
  orderSeq.set(id, seq);
  return seq;
}

function setOrder(id: bigint, o: Order): void {
  // What Purchase just answered is newer than any read in flight.
  beginRead(id);
  state.orders.set(id, o);
}

/**
 * refreshOrder reads an order from LOMS. A failure is kept on its card; with
 * "report" it is also shown as an error, for a read a person asked for.
 */
async function refreshOrder(id: bigint, mode: "report" | "quiet" = "quiet"): Promise<void> {
  const seq = beginRead(id);
  const g = gen;
  reading.add(id);
  try {
    const res = await api.loms.listOrder({ orderId: id });
    if (orderSeq.get(id) !== seq || g !== gen) return;
    readOrder(id, res);
    orderChanged(id);
    await loadProducts(res.items.map((i) => i.sku));
  } catch (err) {
    if (orderSeq.get(id) !== seq || g !== gen) return;
    const e = describe(err, state.settings.loms);
    state.orders.set(id, { ...(state.orders.get(id) ?? { items: [] }), error: e, gone: e.code === "not_found" });
    orderChanged(id);
    if (mode === "report") fail(`Read order ${id}`, e);
  } finally {
    if (orderSeq.get(id) === seq) reading.delete(id);
  }
}

// Pay and Cancel of one order share a busy key: one at a time. After
// either, the order is read again, even after a failure: LOMS may have
// cancelled it meanwhile, or applied a call whose answer was lost.
async function pay(id: bigint): Promise<void> {
  const g = gen;
  const ok = await run(`order-${id}`, `Pay order ${id}`, state.settings.loms, async () => {
    await api.loms.orderPayed({ orderId: id });
  });
  if (g === gen) await refreshOrder(id, ok ? "report" : "quiet");
}

async function cancel(id: bigint): Promise<void> {
  const g = gen;
  const skus = (state.orders.get(id)?.items ?? []).map((i) => i.sku);
  const ok = await run(`order-${id}`, `Cancel order ${id}`, state.settings.loms, async () => {
    await api.loms.cancelOrder({ orderId: id });
  });
  if (g !== gen) return;
  await Promise.all([refreshOrder(id, ok ? "report" : "quiet"), ...skus.filter((s) => state.skus.includes(s)).map(loadStock)]);
}

async function findOrder(text: string): Promise<void> {
  const id = parseId(text);
  if (id === null) {
    invalid(`Find order ${text.trim() || "(empty)"}`, "order id: enter a whole number from 1 to 9223372036854775807");
    return;
  }
  await run("find", `Find order ${id}`, state.settings.loms, async (live) => {
    const seq = beginRead(id);
    const res = await api.loms.listOrder({ orderId: id });
    if (!live() || orderSeq.get(id) !== seq) return;
    readOrder(id, res);
    if (res.user === state.user) rememberOrder(state.user, id);
    else lookedUp.add(id);
    renderOrderList();
    // A card already shown is not rebuilt: it is updated in place.
    orderChanged(id);
    await loadProducts(res.items.map((i) => i.sku));
  });
}

/** readOrder keeps what ListOrder said of an order, status by stage. */
function readOrder(
  id: bigint,
  res: { status: OrderStatus; user: bigint; items: OrderItem[]; payBy?: Timestamp },
): void {
  const o = state.orders.get(id);
  state.orders.set(id, {
    ...o,
    status: newer(o?.status, res.status),
    user: res.user,
    items: res.items,
    payBy: res.payBy && timestampDate(res.payBy),
    error: undefined,
    gone: false,
  });
}

/**
 * orderChanged shows an order's new state on its card and in the history,
 * and starts or stops status streams to match.
 */
function orderChanged(id: bigint): void {
  updateOrder(id);
  orderHistory.update(id);
  syncWatches();
}

// ---- live status -----------------------------------------------------------

const watches = new WatchPool(maxWatches, startWatch, (id, why) => {
  const o = orderState(id);
  if (o.live === why) return;
  o.live = why;
  o.liveReason = undefined;
  updateOrder(id);
});

/** orderState is what the page knows of an order, made empty if nothing. */
function orderState(id: bigint): Order {
  let o = state.orders.get(id);
  if (!o) state.orders.set(id, (o = { items: [] }));
  return o;
}

/**
 * syncWatches streams the status of every open order shown (newest first,
 * as many as the pool allows) and of those not read yet, and of no other.
 */
function syncWatches(): void {
  const wanted = shownOrders().filter((id) => {
    const o = state.orders.get(id);
    return !o?.gone && !o?.unwatchable && (o?.status === undefined || !isFinal(o.status));
  });
  watches.sync(wanted, document.visibilityState === "hidden");
}

function startWatch(id: bigint): () => void {
  const g = gen;
  const order = () => orderState(id);
  return watchOrder(api.loms, id, {
    change(msg) {
      if (g !== gen) return;
      const o = order();
      o.status = newer(o.status, msg.status);
      if (msg.payBy) o.payBy = timestampDate(msg.payBy);
      // An order shown before LOMS could be read (it was down) learns its
      // items once a stream reaches it.
      if (o.user === undefined && !reading.has(id)) void refreshOrder(id);
      orderChanged(id);
    },
    live(s, reason) {
      if (g !== gen) return;
      const o = order();
      o.live = s;
      o.liveReason = reason === undefined ? undefined : describe(reason, state.settings.loms);
      updateOrder(id);
    },
    end(err) {
      if (g !== gen) return;
      watches.ended(id);
      const o = order();
      o.live = undefined;
      o.liveReason = undefined;
      if (err !== undefined) {
        const e = describe(err, state.settings.loms);
        if (e.code === "not_found") {
          o.gone = true;
          o.error = e;
        } else o.unwatchable = e;
      }
      orderChanged(id);
    },
  });
}

document.addEventListener("visibilitychange", syncWatches);

// ---- user and connection ---------------------------------------------------

function switchUser(text: string): void {
  const user = parseId(text);
  if (user === null) {
    invalid("Switch user", "user: enter a whole number from 1 to 9223372036854775807");
    return;
  }
  state.user = user;
  localStorage.setItem("minizon.user", String(user));
  state.cart = null;
  state.cartFailed = false;
  lookedUp.clear();
  renderCart();
  renderOrderList();
  void loadCart();
  void orderHistory.reload();
  void Promise.all(rememberedOrders().map((id) => refreshOrder(id)));
}

function applySettings(next: Settings, persist: boolean): void {
  const problems = checkSettings(next);
  if (problems.length > 0) {
    invalid("Save the connection", problems.join("; "));
    return;
  }
  gen++;
  watches.stopAll();
  state.settings = next;
  if (persist) saveSettings(localStorage, sessionStorage, next);
  api = newAPI(next);
  state.products.clear();
  state.stocks.clear();
  state.orders.clear();
  orderSeq.clear();
  stockSeq.clear();
  reading.clear();
  orderCards.clear();
  listed = "";
  lookedUp.clear();
  state.page = 0;
  state.pageStarts = [0];
  state.failures = [];
  state.cart = null;
  renderFailures();
  renderHeader();
  renderCart();
  renderOrderList();
  void loadPage();
  switchUser(String(state.user));
}

// ---- rendering: header and errors ------------------------------------------

function renderHeader(): void {
  const userInput = h("input", {
    id: "user",
    type: "text",
    inputmode: "numeric",
    value: String(state.user),
    "data-testid": "user-input",
    "aria-label": "User id",
  });
  const s = state.settings;
  const field = (key: keyof Settings, label: string) =>
    h("label", {}, label, h("input", { name: key, value: s[key], "data-testid": `setting-${key}`, spellcheck: "false" }));
  const sameOrigin = [s.checkout, s.loms, s.product].every((u) => normalize(u) === location.origin);
  mount(
    header,
    h("a", { class: "brand", href: "./" }, h("span", { class: "logo" }, "m"), "miniZON"),
    h(
      "form",
      {
        class: "user",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          switchUser(userInput.value);
        },
      },
      h("label", { for: "user" }, "Shopping as user"),
      userInput,
      h("button", { type: "submit", class: "ghost", "data-testid": "user-switch" }, "Switch"),
    ),
    h(
      "details",
      { class: "settings" },
      h("summary", { "data-testid": "settings" }, sameOrigin ? "Connection: this server" : "Connection: custom"),
      h(
        "form",
        {
          class: "settings-form",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            const data = new FormData(ev.target as HTMLFormElement);
            const next = { ...s };
            for (const key of ["checkout", "loms", "product", "token"] as const) {
              const v = String(data.get(key) ?? "").trim();
              next[key] = key === "token" ? v : normalize(v);
            }
            applySettings(next, true);
          },
        },
        h("p", { class: "muted small" }, "Services on other origins must list this page's origin in MINIZON_CORS_ORIGINS."),
        field("checkout", "Checkout"),
        field("loms", "LOMS"),
        field("product", "ProductService"),
        field("token", "Product token"),
        h(
          "div",
          { class: "row" },
          h("button", { type: "submit", "data-testid": "settings-save" }, "Save"),
          h(
            "button",
            {
              type: "button",
              class: "ghost",
              "data-testid": "settings-reset",
              onclick: () => applySettings(defaultSettings(location.origin), true),
            },
            "Same origin",
          ),
        ),
      ),
    ),
  );
}

function renderFailures(): void {
  mount(
    failures,
    state.failures.map((f) =>
      h(
        "div",
        {
          class: f.notice ? "failure notice" : "failure",
          "data-testid": f.notice ? "notice" : "error",
          "data-code": f.code,
        },
        f.code && h("span", { class: "code" }, f.code),
        h(
          "div",
          { class: "failure-text" },
          h("strong", {}, f.action),
          h("span", { "data-testid": "error-message" }, f.message),
          f.hint && h("small", {}, f.hint),
        ),
        h(
          "button",
          {
            type: "button",
            class: "close",
            "aria-label": "Dismiss",
            onclick: () => {
              state.failures = state.failures.filter((x) => x.id !== f.id);
              renderFailures();
            },
          },
          "×",
        ),
      ),
    ),
  );
}

// ---- rendering: catalog ----------------------------------------------------

interface Card {
  root: HTMLElement;
  thumb: HTMLElement;
  title: HTMLElement;
  price: HTMLElement;
  stock: HTMLElement;
}

const cards = new Map<number, Card>();

function renderPager(): void {
  const loading = state.catalog === "loading";
  mount(
    pager,
    h(
      "button",
      {
        type: "button",
        class: "ghost",
        "data-testid": "page-prev",
        disabled: state.page === 0 || loading,
        onclick: () => {
          state.page--;
          void loadPage();
        },
      },
      "← Previous",
    ),
    h("span", { "data-testid": "page-label" }, `Page ${state.page + 1}`),
    h(
      "button",
      {
        type: "button",
        class: "ghost",
        "data-testid": "page-next",
        disabled: !state.hasNext || loading,
        onclick: () => {
          state.pageStarts[state.page + 1] = state.skus[state.skus.length - 1];
          state.page++;
          void loadPage();
        },
      },
      "Next →",
    ),
  );
}

function renderGrid(): void {
  cards.clear();
  if (state.catalog === "failed") {
    mount(
      grid,
      h(
        "p",
        { class: "warn" },
        "The catalog could not be loaded: see the error above. ",
        h("button", { type: "button", class: "ghost", "data-testid": "catalog-retry", onclick: () => void loadPage() }, "Retry"),
      ),
    );
    return;
  }
  if (state.skus.length === 0) {
    mount(grid, h("p", { class: "muted" }, state.catalog === "loading" ? "Loading the catalog…" : "No products to show."));
    return;
  }
  mount(grid, h("div", { class: "grid" }, state.skus.map(productCard)));
}

function productCard(sku: number): HTMLElement {
  const qty = h("input", {
    type: "number",
    min: "1",
    max: "65535",
    step: "1",
    value: "1",
    "aria-label": `Quantity of sku ${sku}`,
    "data-testid": `qty-${sku}`,
  });
  const card: Card = {
    root: h("article", { class: "card", "data-testid": `product-${sku}` }),
    thumb: h("div", { class: "thumb", style: `--hue: ${hue(sku)}` }, "·"),
    title: h("h3", {}, "…"),
    price: h("span", { class: "price" }),
    stock: h("div", { class: "stock-box", "data-testid": `stock-${sku}` }, h("p", { class: "muted" }, "Checking stock…")),
  };
  mount(
    card.root,
    card.thumb,
    h(
      "div",
      { class: "card-body" },
      card.title,
      h("p", { class: "meta" }, card.price, h("span", { class: "sku" }, `sku ${sku}`)),
      card.stock,
      h(
        "form",
        {
          class: "add",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            if (state.busy.has(`add-${sku}`)) return;
            const n = Number(qty.value);
            if (!Number.isInteger(n) || n < 1 || n > 65535) {
              invalid(`Add ${productName(sku)} to the cart`, "count: enter a whole number from 1 to 65535");
              return;
            }
            qty.value = "1";
            void addToCart(sku, n);
          },
        },
        qty,
        h(
          "button",
          {
            type: "submit",
            "data-testid": `add-${sku}`,
            "data-busy-key": `add-${sku}`,
            "aria-label": `Add sku ${sku} to the cart`,
            disabled: state.busy.has(`add-${sku}`),
          },
          "Add to cart",
        ),
      ),
    ),
  );
  cards.set(sku, card);
  updateCard(sku);
  return card.root;
}

/** updateCard fills in what is known of a product, leaving its form alone. */
function updateCard(sku: number): void {
  const card = cards.get(sku);
  if (!card) return;
  const p = state.products.get(sku);
  if (p && "name" in p) {
    card.thumb.textContent = p.name.slice(0, 1);
    card.title.textContent = p.name;
    card.price.textContent = money(p.price);
  } else if (p) {
    mount(card.title, h("span", { class: "warn" }, `${p.code}: ${p.message}`));
  }
  const stocks = state.stocks.get(sku);
  if (stocks === undefined) return;
  if (!Array.isArray(stocks)) {
    mount(card.stock, h("small", { class: "warn" }, "Stock unknown"), h("p", { class: "warn" }, `${stocks.code}: ${stocks.message}`));
    return;
  }
  const available = stocks.reduce((sum, s) => sum + s.count, 0n);
  mount(
    card.stock,
    available > 0n ? h("small", {}, `In stock: ${count(available)}`) : h("small", { class: "warn" }, "Out of stock"),
    h(
      "ul",
      { class: "stock" },
      stocks.map((s) => h("li", {}, h("span", {}, `Warehouse ${s.warehouseId}`), h("b", {}, count(s.count)))),
    ),
  );
}

// ---- rendering: cart -------------------------------------------------------

function button(label: Child, key: string, onclick: () => void, extra: Record<string, string> = {}): HTMLButtonElement {
  return h("button", { type: "button", disabled: state.busy.has(key), "data-busy-key": key, onclick, ...extra }, label);
}

function renderCart(): void {
  const c = state.cart;
  let body: Child;
  if (c === null && state.cartFailed)
    body = h(
      "p",
      { class: "warn" },
      "The cart could not be loaded: see the error above. ",
      h("button", { type: "button", class: "ghost", "data-testid": "cart-retry", onclick: () => void loadCart() }, "Retry"),
    );
  else if (c === null) body = h("p", { class: "muted" }, "Loading the cart…");
  else if (c.items.length === 0) body = h("p", { class: "muted", "data-testid": "cart-empty" }, "Your cart is empty. Add something from the catalog.");
  else
    body = [
      h(
        "ul",
        { class: "lines" },
        c.items.map((i) =>
          h(
            "li",
            { "data-testid": `cart-item-${i.sku}` },
            h("div", { class: "line-name" }, h("b", {}, i.name), h("small", {}, `sku ${i.sku} · ${money(i.price)} each`)),
            h(
              "div",
              { class: "line-qty" },
              button("−", `del-${i.sku}`, () => void removeFromCart(i.sku, 1), { "aria-label": `One less ${i.name}`, "data-testid": `less-${i.sku}` }),
              h("span", { "data-testid": `count-${i.sku}` }, count(i.count)),
              button("+", `add-${i.sku}`, () => void addToCart(i.sku, 1), { "aria-label": `One more ${i.name}`, "data-testid": `more-${i.sku}` }),
            ),
            h("span", { class: "line-total" }, money(BigInt(i.price) * BigInt(i.count))),
            button("Remove", `del-${i.sku}`, () => void removeFromCart(i.sku, i.count), {
              class: "link",
              "data-testid": `remove-${i.sku}`,
              "aria-label": `Remove ${i.name} from the cart`,
            }),
          ),
        ),
      ),
      h("p", { class: "total" }, h("span", {}, "Total"), h("b", { "data-testid": "cart-total" }, money(c.total))),
    ];
  const empty = !c || c.items.length === 0;
  const stale =
    c !== null &&
    state.cartFailed &&
    h(
      "p",
      { class: "warn small" },
      "The cart could not be read again and may be out of date. ",
      h("button", { type: "button", class: "ghost", "data-testid": "cart-retry", onclick: () => void loadCart() }, "Retry"),
    );
  keepFocus(cart, () =>
    mount(
      cart,
      h("div", { class: "panel-head" }, h("h2", {}, "Cart"), h("small", { class: "muted" }, `user ${state.user}`)),
      stale,
      body,
      h(
        "button",
        {
          type: "button",
          class: "primary wide",
          "data-testid": "purchase",
          "data-busy-key": "purchase",
          "data-blocked": String(empty),
          disabled: empty || state.busy.has("purchase"),
          onclick: () => void purchase(),
        },
        state.busy.has("purchase") ? "Placing the order…" : "Purchase",
      ),
    ),
  );
}

/**
 * keepFocus re-renders container and gives the focus back to the element
 * with the same test id, so keyboard users stay where they were.
 */
function keepFocus(container: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  const id = active instanceof HTMLElement && container.contains(active) ? active.dataset.testid : undefined;
  render();
  if (id) container.querySelector<HTMLElement>(`[data-testid="${CSS.escape(id)}"]`)?.focus();
}

// ---- rendering: orders -----------------------------------------------------

interface OrderCard {
  root: HTMLElement;
  who: HTMLElement;
  status: HTMLElement;
  items: HTMLElement;
  error: HTMLElement;
  actions: HTMLElement;
  /** Where the status stream stands. */
  live: HTMLElement;
  /** Time left to pay. */
  countdown: HTMLElement;
  open?: boolean;
}

const orderCards = new Map<bigint, OrderCard>();
let listed = "";

/** renderOrderList lays out the cards; it rebuilds only when the ids change. */
function renderOrderList(): void {
  const ids = shownOrders();
  const key = ids.join(",");
  if (key === listed && orderList.firstChild) return;
  listed = key;
  for (const id of orderCards.keys()) if (!ids.includes(id)) orderCards.delete(id);
  keepFocus(orderList, () =>
    mount(
      orderList,
      ids.length === 0
        ? h("p", { class: "muted" }, "No orders yet. Purchase your cart to place one, then pay or cancel it here.")
        : h("ul", { class: "order-list" }, ids.map((id) => orderCard(id).root)),
    ),
  );
  for (const id of ids) updateOrder(id);
  syncWatches();
}

function orderCard(id: bigint): OrderCard {
  let c = orderCards.get(id);
  if (c) return c;
  c = {
    root: h("li", { class: "order", "data-testid": `order-${id}` }),
    who: h("small", { class: "muted" }),
    status: h("span", { class: "status", "data-testid": "order-status" }, "…"),
    items: h("ul", { class: "order-items" }),
    error: h("p", { class: "warn small", "data-testid": "order-error" }),
    actions: h("div", { class: "row" }),
    live: h("small", { class: "live", "data-testid": "order-live", "data-live": "off", hidden: true }),
    countdown: h("small", { class: "countdown", "data-testid": "order-countdown", role: "timer", hidden: true }),
  };
  mount(
    c.root,
    h("div", { class: "order-head" }, h("b", {}, `Order ${id}`), c.who, c.status),
    h("div", { class: "order-meta" }, c.countdown, c.live),
    c.items,
    c.error,
    c.actions,
  );
  orderCards.set(id, c);
  return c;
}

/** updateOrder shows an order's state on its card, in place. */
function updateOrder(id: bigint): void {
  const c = orderCards.get(id);
  if (!c) return;
  const o = state.orders.get(id);
  c.who.textContent = o?.user !== undefined && o.user !== state.user ? `user ${o.user}` : "";
  if (o?.status !== undefined) {
    c.status.textContent = statusLabel(o.status);
    c.status.dataset.status = statusName(o.status);
    c.status.className = `status s-${statusName(o.status).toLowerCase()}`;
  } else {
    c.status.textContent = "…";
    delete c.status.dataset.status;
    c.status.className = "status";
  }
  const lines = (o?.items ?? []).map((i) => `${productName(i.sku)} × ${count(i.count)}`);
  if (lines.join("\n") !== [...c.items.children].map((li) => li.textContent).join("\n")) {
    mount(c.items, lines.map((l) => h("li", {}, l)));
  }
  c.error.textContent = o?.error ? `${o.error.code}: ${o.error.message}` : "";
  c.error.hidden = !o?.error;
  showCountdown(c.countdown, o?.status === OrderStatus.AWAITING_PAYMENT && !o.gone ? o.payBy : undefined);
  showLive(c.live, o);
  // The buttons are made when the order becomes open and removed when it
  // closes, never in between: a status update must not swap them under
  // the pointer.
  const open = o?.status !== undefined && isOpen(o.status) && !o.gone;
  if (open !== c.open) {
    c.open = open;
    mount(
      c.actions,
      open && [
        button("Pay", `order-${id}`, () => void pay(id), { class: "primary", "data-testid": `pay-${id}`, "aria-label": `Pay order ${id}` }),
        button("Cancel", `order-${id}`, () => void cancel(id), {
          class: "ghost",
          "data-testid": `cancel-${id}`,
          "aria-label": `Cancel order ${id}`,
        }),
      ],
    );
  }
}

/** showLive says on an order's card whether its status is live. */
function showLive(el: HTMLElement, o: Order | undefined): void {
  let kind = "off";
  let text = "";
  let title = "";
  if (o && !o.gone && (o.status === undefined || !isFinal(o.status))) {
    if (o.unwatchable) {
      kind = "unavailable";
      text = "Not live";
      title = `LOMS will not stream this order's status: ${o.unwatchable.code}: ${o.unwatchable.message}`;
    } else if (o.live) {
      kind = o.live;
      text = {
        connecting: "Connecting…",
        live: "Live",
        reconnecting: "Reconnecting…",
        queued: "Not live yet",
        paused: "Paused",
      }[o.live];
      title = {
        connecting: "Opening this order's status stream.",
        live: "Status changes show here as LOMS makes them.",
        reconnecting: `The status stream was lost${o.liveReason ? ` (${o.liveReason.code}: ${o.liveReason.message})` : ""}; trying again.`,
        queued: `The page follows ${maxWatches} open orders at once; this one is followed when one of them closes.`,
        paused: "Not followed while the tab is hidden; it is read again when you come back.",
      }[o.live];
    }
  }
  // Only what changed is written: the card is redrawn on every update.
  if (el.dataset.live !== kind) el.dataset.live = kind;
  if (el.hidden !== (kind === "off")) el.hidden = kind === "off";
  if (el.textContent !== text) el.textContent = text;
  if (el.title !== title) el.title = title;
}

/** renderProductNames updates the order cards that list sku. */
function renderProductNames(sku: number): void {
  for (const [id, o] of state.orders) {
    if (o.items.some((i) => i.sku === sku)) updateOrder(id);
  }
  orderHistory.names(sku);
}

// ---- start -----------------------------------------------------------------

renderHeader();
renderFailures();
renderPager();
renderGrid();
renderCart();
renderOrderList();
for (const p of loaded.problems) invalid("Read the connection from the address", p);
// The query's settings now live in this tab's storage: take them out of the
// address bar and history (the token among them).
if (loaded.fromQuery) history.replaceState(null, "", location.pathname);
void loadPage();
switchUser(String(state.user));
