// The miniZON storefront: one page over Checkout, LOMS and ProductService.
//
// State lives in plain objects. Panels are built once and updated in place
// (a product card, an order card), so that live status changes and the
// answers arriving one by one never replace a button under the pointer or
// an input being typed in. Loads are "latest wins": an answer that a newer
// request, a page turn, a user switch or a change of connection has made
// stale is dropped instead of shown. An order's status only moves forward,
// so of two answers about it the later stage wins, whatever their order.
//
// Each panel is a module of its own; this file makes them, hands each what
// it needs of the others, and runs what touches them all: the start, a
// switch of user and a change of connection.
import "./style.css";
import { Cart } from "./cart.js";
import { Catalog } from "./catalog.js";
import { Connection } from "./connection.js";
import { h, mount } from "./dom.js";
import { Failures } from "./failures.js";
import { parseId } from "./format.js";
import { History } from "./history.js";
import { Orders } from "./orders.js";
import { Session } from "./session.js";
import { loadSettings, saveSettings, type Settings } from "./settings.js";

const loaded = loadSettings(location, localStorage, sessionStorage);
const failures = new Failures();
const session: Session = new Session({
  settings: loaded.settings,
  user: parseId(localStorage.getItem("minizon.user") ?? "") ?? 1n,
  failures,
  busyChanged: () => cart.showBusy(),
});
const catalog: Catalog = new Catalog({
  session,
  failures,
  addToCart: (sku, n) => cart.add(sku, n),
  named: (sku) => {
    orders.names(sku);
    orderHistory.names(sku);
  },
});
const cart: Cart = new Cart({
  session,
  failures,
  productName: (sku) => catalog.productName(sku),
  remember: (user, id, loms) => orders.remember(user, id, loms),
  placed: (id, user, status) => orders.placed(id, user, status),
  ordered: (id, skus) => Promise.all([orders.refresh(id, "report"), orderHistory.refresh(), catalog.reloadStocks(skus)]),
});
const orders: Orders = new Orders({
  session,
  failures,
  productName: (sku) => catalog.productName(sku),
  loadProducts: (skus) => catalog.loadProducts(skus),
  reloadStocks: (skus) => catalog.reloadStocks(skus),
  changed: (id) => orderHistory.update(id),
});
const orderHistory: History = new History({
  api: () => session.api,
  user: () => session.user,
  productName: (sku) => catalog.productName(sku),
  loadProducts: (skus) => catalog.loadProducts(skus),
  statusOf: (id) => orders.statusOf(id),
  fail: (action, e) => failures.fail(action, e),
});
const connection = new Connection({ session, failures, switchUser, connect });

mount(
  document.querySelector<HTMLDivElement>("#app")!,
  connection.root,
  failures.root,
  h("main", { class: "layout" }, catalog.root, h("aside", { class: "side" }, cart.root, orders.root, orderHistory.root)),
);

/** switchUser shows user's cart and orders, and remembers the choice. */
function switchUser(user: bigint): void {
  session.user = user;
  localStorage.setItem("minizon.user", String(user));
  cart.reset();
  orders.forgetLookedUp();
  cart.render();
  orders.render();
  void cart.load();
  void orderHistory.reload();
  void orders.refreshRemembered();
}

/** connect sends every RPC to the services next names, saved for later visits, and reads everything again. */
function connect(next: Settings): void {
  session.connect(next);
  orders.reset();
  saveSettings(localStorage, sessionStorage, next);
  catalog.reset();
  cart.reset();
  failures.clear();
  connection.render();
  cart.render();
  orders.render();
  void catalog.load();
  switchUser(session.user);
}

connection.render();
failures.render();
catalog.render();
cart.render();
orders.render();
for (const p of loaded.problems) failures.invalid("Read the connection from the address", p);
// The query's settings now live in this tab's storage: take them out of the
// address bar and history (the token among them).
if (loaded.fromQuery) history.replaceState(null, "", location.pathname);
void catalog.load();
switchUser(session.user);
