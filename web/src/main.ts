// The miniZON storefront: one page over Checkout, LOMS and ProductService.
// State lives in plain objects; each panel re-renders from it after a call.
import "./style.css";
import { describe, newAPI, type API, type ShownError } from "./api.js";
import { h, mount, type Child } from "./dom.js";
import { count, hue, isOpen, money, statusLabel, statusName } from "./format.js";
import type { CartItem } from "./gen/minizon/checkout/v1/checkout_pb.js";
import { OrderStatus, type OrderItem, type Stock } from "./gen/minizon/loms/v1/loms_pb.js";
import { checkURL, defaultSettings, loadSettings, saveSettings, type Settings } from "./settings.js";

const pageSize = 12;
// Open orders are asked for their status this often, so a payment made
// elsewhere or LOMS cancelling an unpaid order shows up by itself.
const watchInterval = 2000;

interface Product {
  name: string;
  price: number;
}

interface Order {
  status: OrderStatus;
  user: bigint;
  items: OrderItem[];
}

interface Failure extends ShownError {
  id: number;
  /** What the page was doing, e.g. "Pay order 12". */
  action: string;
}

const state = {
  settings: loadSettings(location, localStorage),
  user: loadUser(),
  // pageStarts[i] is the start_after_sku of page i; page 0 starts at 0.
  pageStarts: [0],
  page: 0,
  skus: [] as number[],
  hasNext: false,
  catalogLoading: true,
  products: new Map<number, Product | ShownError>(),
  stocks: new Map<number, Stock[] | ShownError>(),
  cart: null as { items: CartItem[]; total: bigint } | null,
  cartFailed: false,
  catalogFailed: false,
  orders: new Map<bigint, Order>(),
  failures: [] as Failure[],
  busy: new Set<string>(),
  // Quantities typed into the catalog, kept across re-renders.
  qty: new Map<number, string>(),
};
let api: API = newAPI(state.settings);
let nextFailureId = 1;

// ---- the page's frame ------------------------------------------------------

const app = document.querySelector<HTMLDivElement>("#app")!;
const header = h("header", { class: "topbar" });
const failures = h("section", { class: "failures", "data-testid": "errors", "aria-live": "polite" });
const catalog = h("section", { class: "panel catalog", "data-testid": "catalog", "aria-label": "Catalog" });
const cart = h("section", { class: "panel cart", "data-testid": "cart", "aria-label": "Cart" });
const orders = h("section", { class: "panel orders", "data-testid": "orders", "aria-label": "Orders" });
mount(app, header, failures, h("main", { class: "layout" }, catalog, h("aside", { class: "side" }, cart, orders)));

// ---- calls -----------------------------------------------------------------

/**
 * run performs one user action: the button named key is disabled while it
 * runs, and a failure is shown with its Connect code, never swallowed.
 */
async function run(key: string, action: string, service: keyof Settings, fn: () => Promise<void>): Promise<void> {
  if (state.busy.has(key)) return;
  state.busy.add(key);
  renderAll();
  try {
    await fn();
  } catch (err) {
    fail(action, describe(err, state.settings[service]));
  } finally {
    state.busy.delete(key);
    renderAll();
  }
}

function fail(action: string, e: ShownError): void {
  state.failures.unshift({ ...e, action, id: nextFailureId++ });
  state.failures.length = Math.min(state.failures.length, 5);
  renderFailures();
}

// Loads of the catalog and the cart are "latest wins": a page turned or a
// user switched while one is in flight makes its answer stale, and a stale
// answer is dropped instead of shown.
let pageSeq = 0;
let cartSeq = 0;

async function loadPage(): Promise<void> {
  const seq = ++pageSeq;
  state.catalogLoading = true;
  renderCatalog();
  let skus: number[] = [];
  try {
    const res = await api.product.listSkus({
      token: api.token,
      startAfterSku: state.pageStarts[state.page],
      count: pageSize,
    });
    skus = res.skus;
    state.catalogFailed = false;
  } catch (err) {
    if (seq !== pageSeq) return;
    state.catalogFailed = true;
    fail("Load the catalog", describe(err, state.settings.product));
  }
  if (seq !== pageSeq) return;
  state.skus = skus;
  state.hasNext = skus.length === pageSize;
  state.catalogLoading = false;
  renderCatalog();
  await Promise.all([loadProducts(skus), ...skus.map(loadStock)]);
}

/** loadProducts fetches names and prices the page does not know yet. */
async function loadProducts(skus: Iterable<number>): Promise<void> {
  const missing = [...new Set(skus)].filter((sku) => !(state.products.get(sku) && "name" in state.products.get(sku)!));
  await Promise.all(
    missing.map(async (sku) => {
      try {
        const p = await api.product.getProduct({ token: api.token, sku });
        state.products.set(sku, { name: p.name, price: p.price });
      } catch (err) {
        state.products.set(sku, describe(err, state.settings.product));
      }
    }),
  );
  renderAll();
}

async function loadStock(sku: number): Promise<void> {
  try {
    const res = await api.loms.stocks({ sku });
    state.stocks.set(sku, res.stocks);
  } catch (err) {
    state.stocks.set(sku, describe(err, state.settings.loms));
  }
  renderCatalog();
}

async function loadCart(): Promise<void> {
  const seq = ++cartSeq;
  try {
    const res = await api.checkout.listCart({ user: state.user });
    if (seq !== cartSeq) return;
    state.cart = { items: res.items, total: res.totalPrice };
    state.cartFailed = false;
  } catch (err) {
    if (seq !== cartSeq) return;
    state.cartFailed = true;
    fail("Load the cart", describe(err, state.settings.checkout));
  }
  renderCart();
}

async function loadOrder(id: bigint): Promise<void> {
  const res = await api.loms.listOrder({ orderId: id });
  state.orders.set(id, { status: res.status, user: res.user, items: res.items });
  await loadProducts(res.items.map((i) => i.sku));
}

async function addToCart(sku: number, n: number): Promise<void> {
  const name = productName(sku);
  await run(`add-${sku}`, `Add ${n} × ${name} to the cart`, "checkout", async () => {
    await api.checkout.addToCart({ user: state.user, sku, count: n });
  });
  await loadCart();
}

async function removeFromCart(sku: number, n: number): Promise<void> {
  await run(`del-${sku}`, `Remove ${n} × ${productName(sku)} from the cart`, "checkout", async () => {
    await api.checkout.deleteFromCart({ user: state.user, sku, count: n });
  });
  await loadCart();
}

async function purchase(): Promise<void> {
  const skus = state.cart?.items.map((i) => i.sku) ?? [];
  const user = state.user;
  await run("purchase", "Purchase", "checkout", async () => {
    const res = await api.checkout.purchase({ user });
    rememberOrder(user, res.orderId);
    state.orders.set(res.orderId, { status: res.status, user, items: [] });
    if (res.status === OrderStatus.FAILED) {
      fail("Purchase", {
        code: "failed_precondition",
        message: `order ${res.orderId} failed: the warehouses could not reserve every item; your cart is as it was`,
      });
    }
    await loadOrder(res.orderId);
  });
  await Promise.all([loadCart(), ...skus.filter((s) => state.skus.includes(s)).map(loadStock)]);
}

async function pay(id: bigint): Promise<void> {
  await run(`pay-${id}`, `Pay order ${id}`, "loms", async () => {
    await api.loms.orderPayed({ orderId: id });
    await loadOrder(id);
  });
}

async function cancel(id: bigint): Promise<void> {
  const items = state.orders.get(id)?.items ?? [];
  await run(`cancel-${id}`, `Cancel order ${id}`, "loms", async () => {
    await api.loms.cancelOrder({ orderId: id });
    await loadOrder(id);
  });
  await Promise.all(items.map((i) => i.sku).filter((s) => state.skus.includes(s)).map(loadStock));
}

async function findOrder(raw: string): Promise<void> {
  const text = raw.trim();
  if (!/^[1-9][0-9]{0,18}$/.test(text)) {
    fail(`Find order ${text || "(empty)"}`, {
      code: "invalid_argument",
      message: "order id: enter a whole number from 1",
    });
    return;
  }
  const id = BigInt(text);
  await run("find", `Find order ${id}`, "loms", async () => {
    await loadOrder(id);
    if (state.orders.get(id)?.user === state.user) rememberOrder(state.user, id);
    else lookedUp.add(id);
  });
}

/** watch asks LOMS for the status of the open orders shown. */
async function watch(): Promise<void> {
  const open = shownOrders().filter((id) => {
    const o = state.orders.get(id);
    return !o || isOpen(o.status);
  });
  for (const id of open) {
    try {
      await loadOrder(id);
    } catch {
      // The next round tries again; an action the person takes shows
      // its own error.
    }
  }
  if (open.length > 0) renderOrders();
}

// ---- the user and their orders ---------------------------------------------

// Orders looked up by id that belong to another user are shown until the
// user changes, but not remembered.
const lookedUp = new Set<bigint>();

function loadUser(): bigint {
  const v = localStorage.getItem("minizon.user");
  return v && /^[1-9][0-9]{0,18}$/.test(v) ? BigInt(v) : 1n;
}

function ordersKey(user: bigint): string {
  return `minizon.orders.${user}`;
}

function rememberedOrders(user = state.user): bigint[] {
  try {
    const ids = JSON.parse(localStorage.getItem(ordersKey(user)) ?? "[]") as string[];
    return ids.filter((s) => /^[1-9][0-9]{0,18}$/.test(s)).map((s) => BigInt(s));
  } catch {
    return [];
  }
}

function rememberOrder(user: bigint, id: bigint): void {
  const ids = [id, ...rememberedOrders(user).filter((o) => o !== id)].slice(0, 20);
  localStorage.setItem(ordersKey(user), JSON.stringify(ids.map(String)));
}

function shownOrders(): bigint[] {
  return [...lookedUp, ...rememberedOrders()].filter((id, i, all) => all.indexOf(id) === i);
}

async function switchUser(raw: string): Promise<void> {
  if (!/^[1-9][0-9]{0,18}$/.test(raw.trim())) {
    fail("Switch user", { code: "invalid_argument", message: "user: enter a whole number from 1" });
    renderHeader();
    return;
  }
  state.user = BigInt(raw.trim());
  localStorage.setItem("minizon.user", String(state.user));
  state.cart = null;
  lookedUp.clear();
  renderHeader();
  renderAll();
  await Promise.all([loadCart(), ...rememberedOrders().map((id) => loadOrder(id).catch(() => undefined))]);
  renderOrders();
}

// ---- rendering -------------------------------------------------------------

// The header is rendered on its own (at start, on a user or connection
// change), so that a re-render never wipes what someone is typing there.
function renderAll(): void {
  renderCatalog();
  renderCart();
  renderOrders();
}

function productName(sku: number): string {
  const p = state.products.get(sku);
  return p && "name" in p ? p.name : `sku ${sku}`;
}

function button(label: Child, key: string, onclick: () => void, extra: Record<string, string> = {}): HTMLButtonElement {
  const busy = state.busy.has(key);
  return h(
    "button",
    { type: "button", disabled: busy, "aria-busy": busy ? "true" : undefined, onclick, ...extra },
    label,
  );
}

function renderHeader(): void {
  const userInput = h("input", {
    id: "user",
    type: "number",
    min: "1",
    step: "1",
    inputmode: "numeric",
    value: String(state.user),
    "data-testid": "user-input",
    "aria-label": "User id",
  });
  const s = state.settings;
  const field = (key: keyof Settings, label: string) =>
    h("label", {}, label, h("input", { name: key, value: s[key], "data-testid": `setting-${key}`, spellcheck: "false" }));
  const form = h(
    "form",
    {
      class: "settings-form",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const data = new FormData(ev.target as HTMLFormElement);
        const next = { ...s };
        for (const key of ["checkout", "loms", "product", "token"] as const) next[key] = String(data.get(key) ?? "").trim();
        for (const key of ["checkout", "loms", "product"] as const) {
          const problem = checkURL(next[key]);
          if (problem) return fail("Save the connection", { code: "invalid_argument", message: `${key}: ${problem}` });
        }
        applySettings(next);
      },
    },
    field("checkout", "Checkout"),
    field("loms", "LOMS"),
    field("product", "ProductService"),
    field("token", "Product token"),
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "ghost", onclick: () => applySettings(defaultSettings(location.origin)) }, "Same origin"),
    ),
  );
  const sameOrigin = [s.checkout, s.loms, s.product].every((u) => u === location.origin);
  mount(
    header,
    h("a", { class: "brand", href: "./" }, h("span", { class: "logo" }, "m"), "miniZON"),
    h(
      "form",
      {
        class: "user",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void switchUser(userInput.value);
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
      form,
    ),
  );
}

function applySettings(next: Settings): void {
  state.settings = next;
  saveSettings(localStorage, next);
  api = newAPI(next);
  renderHeader();
  state.products.clear();
  state.stocks.clear();
  state.failures = [];
  renderFailures();
  void Promise.all([loadPage(), loadCart()]);
}

function renderFailures(): void {
  mount(
    failures,
    state.failures.map((f) =>
      h(
        "div",
        { class: "failure", role: "alert", "data-testid": "error", "data-code": f.code },
        h("span", { class: "code" }, f.code),
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

function renderCatalog(): void {
  const pager = h(
    "div",
    { class: "pager" },
    h(
      "button",
      {
        type: "button",
        class: "ghost",
        "data-testid": "page-prev",
        disabled: state.page === 0 || state.catalogLoading,
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
        disabled: !state.hasNext || state.catalogLoading,
        onclick: () => {
          state.pageStarts[state.page + 1] = state.skus[state.skus.length - 1];
          state.page++;
          void loadPage();
        },
      },
      "Next →",
    ),
  );
  let body: Child;
  if (state.catalogLoading && state.skus.length === 0) body = h("p", { class: "muted" }, "Loading the catalog…");
  else if (state.catalogFailed) body = h("p", { class: "warn" }, "The catalog could not be loaded: see the error above.");
  else if (state.skus.length === 0) body = h("p", { class: "muted" }, "No products to show.");
  else body = h("div", { class: "grid" }, state.skus.map(productCard));
  mount(catalog, h("div", { class: "panel-head" }, h("h2", {}, "Catalog"), pager), body);
}

function productCard(sku: number): HTMLElement {
  const p = state.products.get(sku);
  const stocks = state.stocks.get(sku);
  const available = Array.isArray(stocks) ? stocks.reduce((sum, s) => sum + s.count, 0n) : 0n;
  const qty = h("input", {
    type: "number",
    min: "1",
    max: "65535",
    step: "1",
    value: state.qty.get(sku) ?? "1",
    "aria-label": `Quantity of sku ${sku}`,
    "data-testid": `qty-${sku}`,
    oninput: (ev: Event) => state.qty.set(sku, (ev.target as HTMLInputElement).value),
  });
  let stockView: Child;
  if (stocks === undefined) stockView = h("p", { class: "muted" }, "Checking stock…");
  else if (!Array.isArray(stocks)) stockView = h("p", { class: "warn" }, `${stocks.code}: ${stocks.message}`);
  else if (stocks.length === 0) stockView = h("p", { class: "warn" }, "Out of stock");
  else
    stockView = h(
      "ul",
      { class: "stock" },
      stocks.map((s) => h("li", {}, h("span", {}, `Warehouse ${s.warehouseId}`), h("b", {}, count(s.count)))),
    );
  return h(
    "article",
    { class: "card", "data-testid": `product-${sku}` },
    h("div", { class: "thumb", style: `--hue: ${hue(sku)}` }, p && "name" in p ? p.name.slice(0, 1) : "·"),
    h(
      "div",
      { class: "card-body" },
      h("h3", {}, p === undefined ? "…" : "name" in p ? p.name : h("span", { class: "warn" }, `${p.code}: ${p.message}`)),
      h("p", { class: "meta" }, h("span", { class: "price" }, p && "price" in p ? money(p.price) : ""), h("span", { class: "sku" }, `sku ${sku}`)),
      h("div", { class: "stock-box", "data-testid": `stock-${sku}` }, h("small", {}, Array.isArray(stocks) ? `In stock: ${count(available)}` : "Stock"), stockView),
      h(
        "form",
        {
          class: "add",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            const n = Number(qty.value);
            if (!Number.isInteger(n) || n < 1 || n > 65535) {
              fail(`Add ${productName(sku)} to the cart`, { code: "invalid_argument", message: "count: enter a whole number from 1 to 65535" });
              return;
            }
            state.qty.delete(sku);
            void addToCart(sku, n);
          },
        },
        qty,
        h("button", { type: "submit", disabled: state.busy.has(`add-${sku}`), "data-testid": `add-${sku}` }, "Add to cart"),
      ),
    ),
  );
}

function renderCart(): void {
  const c = state.cart;
  let body: Child;
  if (c === null && state.cartFailed) body = h("p", { class: "warn" }, "The cart could not be loaded: see the error above.");
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
            button("Remove", `del-${i.sku}`, () => void removeFromCart(i.sku, i.count), { class: "link", "data-testid": `remove-${i.sku}` }),
          ),
        ),
      ),
      h("p", { class: "total" }, h("span", {}, "Total"), h("b", { "data-testid": "cart-total" }, money(c.total))),
    ];
  mount(
    cart,
    h("div", { class: "panel-head" }, h("h2", {}, "Cart"), h("small", { class: "muted" }, `user ${state.user}`)),
    body,
    h(
      "button",
      {
        type: "button",
        class: "primary wide",
        "data-testid": "purchase",
        disabled: !c || c.items.length === 0 || state.busy.has("purchase"),
        onclick: () => void purchase(),
      },
      state.busy.has("purchase") ? "Placing the order…" : "Purchase",
    ),
  );
}

// The lookup form is made once: the list below it re-renders every few
// seconds while an order is open, and must not wipe a half-typed id.
const findInput = h("input", {
  type: "text",
  inputmode: "numeric",
  placeholder: "Order id",
  "aria-label": "Order id",
  "data-testid": "find-order-input",
});
const findButton = h("button", { type: "submit", class: "ghost", "data-testid": "find-order" }, "Find");
const orderList = h("div", {});
mount(
  orders,
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
    findButton,
  ),
  orderList,
);

function renderOrders(): void {
  const ids = shownOrders();
  findButton.disabled = state.busy.has("find");
  mount(
    orderList,
    ids.length === 0 ? h("p", { class: "muted" }, "No orders yet. Purchase your cart to place one, then pay or cancel it here.") : h("ul", { class: "order-list" }, ids.map(orderCard)),
  );
}

function orderCard(id: bigint): HTMLElement {
  const o = state.orders.get(id);
  const status = o?.status ?? OrderStatus.UNSPECIFIED;
  return h(
    "li",
    { class: "order", "data-testid": `order-${id}` },
    h(
      "div",
      { class: "order-head" },
      h("b", {}, `Order ${id}`),
      o && o.user !== state.user && h("small", { class: "muted" }, `user ${o.user}`),
      h(
        "span",
        { class: `status s-${statusName(status).toLowerCase()}`, "data-testid": "order-status", "data-status": statusName(status) },
        o ? statusLabel(status) : "…",
      ),
    ),
    o &&
      o.items.length > 0 &&
      h(
        "ul",
        { class: "order-items" },
        o.items.map((i) => h("li", {}, `${productName(i.sku)} × ${count(i.count)}`)),
      ),
    o &&
      isOpen(status) &&
      h(
        "div",
        { class: "row" },
        button("Pay", `pay-${id}`, () => void pay(id), { class: "primary", "data-testid": `pay-${id}` }),
        button("Cancel", `cancel-${id}`, () => void cancel(id), { class: "ghost", "data-testid": `cancel-${id}` }),
      ),
  );
}

// ---- start -----------------------------------------------------------------

renderAll();
renderFailures();
void loadPage();
void switchUser(String(state.user));
setInterval(() => void watch(), watchInterval);
