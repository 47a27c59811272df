// The orders panel: the orders the page placed (remembered in the browser
// per user and LOMS) and those found by id, newest first, each on a card
// (order-card.ts) that pays or cancels it. Open orders follow their status
// live (live.ts).
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { describe } from "./api.js";
import { h, keepFocus, mount } from "./dom.js";
import type { Failures } from "./failures.js";
import { newer, parseId } from "./format.js";
import type { OrderItem, OrderStatus } from "./gen/minizon/loms/v1/loms_pb.js";
import { LiveStatus } from "./live.js";
import { OrderCard, type Order, type OrderCardDeps } from "./order-card.js";
import { rememberOrder, rememberedOrders } from "./remembered.js";
import type { Session } from "./session.js";

export interface OrdersDeps {
  session: Session;
  failures: Failures;
  productName(sku: number): string;
  /** loadProducts fetches the names of skus; the page calls names() as they come. */
  loadProducts(skus: number[]): Promise<void>;
  /** reloadStocks reads again the stock of skus, which a cancel gave back. */
  reloadStocks(skus: number[]): Promise<void>;
  /** changed is told of an order whose state changed, after its card shows it. */
  changed(id: bigint): void;
}

export class Orders {
  readonly root: HTMLElement;
  private readonly list = h("div", {});
  private readonly orders = new Map<bigint, Order>();
  private readonly seq = new Map<bigint, number>();
  // Orders with a read in flight: a stream that finds an order without its
  // items does not ask for them twice.
  private readonly reading = new Set<bigint>();
  // Orders looked up by id that belong to another user are shown until the
  // user changes, but not remembered.
  private readonly lookedUp = new Set<bigint>();
  private readonly cards = new Map<bigint, OrderCard>();
  private readonly cardDeps: OrderCardDeps;
  private listed = "";
  private readonly live: LiveStatus;

  constructor(private readonly deps: OrdersDeps) {
    const findInput = h("input", {
      type: "text",
      inputmode: "numeric",
      placeholder: "Order id",
      "aria-label": "Order id",
      "data-testid": "find-order-input",
    });
    this.root = h(
      "section",
      { class: "panel orders", "data-testid": "orders", "aria-label": "Orders" },
      h("div", { class: "panel-head" }, h("h2", {}, "Orders")),
      h(
        "form",
        {
          class: "find",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            void this.find(findInput.value);
          },
        },
        findInput,
        h("button", { type: "submit", class: "ghost", "data-testid": "find-order", "data-busy-key": "find" }, "Find"),
      ),
      this.list,
    );
    this.cardDeps = {
      session: deps.session,
      productName: deps.productName,
      pay: (id) => void this.pay(id),
      cancel: (id) => void this.cancel(id),
    };
    this.live = new LiveStatus({
      session: deps.session,
      orders: this.orders,
      shown: () => this.shown(),
      unread: (id) => {
        if (!this.reading.has(id)) void this.refresh(id);
      },
      changed: (id) => this.changed(id),
      show: (id) => this.cards.get(id)?.show(this.orders.get(id)),
    });
  }

  /** reset stops every watch and forgets what the old connection said. */
  reset(): void {
    this.live.stopAll();
    this.orders.clear();
    this.seq.clear();
    this.reading.clear();
    this.cards.clear();
    this.listed = "";
    this.lookedUp.clear();
  }

  /** forgetLookedUp stops showing the orders of other users found by id. */
  forgetLookedUp(): void {
    this.lookedUp.clear();
  }

  /** statusOf is the status the page knows of order id, if any. */
  statusOf(id: bigint): OrderStatus | undefined {
    return this.orders.get(id)?.status;
  }

  /** remember files order id under user and the LOMS it was placed with. */
  remember(user: bigint, id: bigint, loms: string): void {
    rememberOrder(localStorage, user, id, loms);
  }

  /** placed shows an order Purchase just made. */
  placed(id: bigint, user: bigint, status: OrderStatus): void {
    // What Purchase just answered is newer than any read in flight.
    this.beginRead(id);
    this.orders.set(id, { status, user, items: [] });
    this.render();
  }

  /** refreshRemembered reads the current user's remembered orders again. */
  refreshRemembered(): Promise<void[]> {
    return Promise.all(this.remembered().map((id) => this.refresh(id)));
  }

  /**
   * refresh reads an order from LOMS. A failure is kept on its card; with
   * "report" it is also shown as an error, for a read a person asked for.
   */
  async refresh(id: bigint, mode: "report" | "quiet" = "quiet"): Promise<void> {
    const { session } = this.deps;
    const seq = this.beginRead(id);
    const live = session.current();
    this.reading.add(id);
    try {
      const res = await session.api.loms.listOrder({ orderId: id });
      if (this.seq.get(id) !== seq || !live()) return;
      this.read(id, res);
      this.changed(id);
      await this.deps.loadProducts(res.items.map((i) => i.sku));
    } catch (err) {
      if (this.seq.get(id) !== seq || !live()) return;
      const e = describe(err, session.settings.loms);
      this.orders.set(id, { ...(this.orders.get(id) ?? { items: [] }), error: e, gone: e.code === "not_found" });
      this.changed(id);
      if (mode === "report") this.deps.failures.fail(`Read order ${id}`, e);
    } finally {
      if (this.seq.get(id) === seq) this.reading.delete(id);
    }
  }

  /** names redraws the cards that list sku, whose name arrived. */
  names(sku: number): void {
    for (const [id, o] of this.orders) {
      if (o.items.some((i) => i.sku === sku)) this.cards.get(id)?.show(o);
    }
  }

  /** render lays out the cards; it rebuilds only when the ids change. */
  render(): void {
    const ids = this.shown();
    const key = ids.join(",");
    if (key === this.listed && this.list.firstChild) return;
    this.listed = key;
    for (const id of this.cards.keys()) if (!ids.includes(id)) this.cards.delete(id);
    keepFocus(this.list, () =>
      mount(
        this.list,
        ids.length === 0
          ? h("p", { class: "muted" }, "No orders yet. Purchase your cart to place one, then pay or cancel it here.")
          : h("ul", { class: "order-list" }, ids.map((id) => this.card(id).root)),
      ),
    );
    for (const id of ids) this.cards.get(id)?.show(this.orders.get(id));
    this.live.sync();
  }

  private card(id: bigint): OrderCard {
    let c = this.cards.get(id);
    if (!c) this.cards.set(id, (c = new OrderCard(id, this.cardDeps)));
    return c;
  }

  /** remembered lists the current user's remembered orders at the current LOMS. */
  private remembered(): bigint[] {
    return rememberedOrders(localStorage, this.deps.session.user, this.deps.session.settings.loms);
  }

  private shown(): bigint[] {
    return [...new Set([...this.lookedUp, ...this.remembered()])].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  }

  /** beginRead numbers a read of order id; answers of older reads are stale. */
  private beginRead(id: bigint): number {
    const seq = (this.seq.get(id) ?? 0) + 1;
    this.seq.set(id, seq);
    return seq;
  }

  /** read keeps what ListOrder said of an order, status by stage. */
  private read(id: bigint, res: { status: OrderStatus; user: bigint; items: OrderItem[]; payBy?: Timestamp }): void {
    const o = this.orders.get(id);
    this.orders.set(id, {
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
   * changed shows an order's new state on its card and in the history, and
   * starts or stops status streams to match.
   */
  private changed(id: bigint): void {
    this.cards.get(id)?.show(this.orders.get(id));
    this.deps.changed(id);
    this.live.sync();
  }

  // Pay and Cancel of one order share a busy key: one at a time. After
  // either, the order is read again, even after a failure: LOMS may have
  // cancelled it meanwhile, or applied a call whose answer was lost.
  private async pay(id: bigint): Promise<void> {
    const { session } = this.deps;
    const live = session.current();
    const ok = await session.run(`order-${id}`, `Pay order ${id}`, session.settings.loms, async () => {
      await session.api.loms.orderPayed({ orderId: id });
    });
    if (live()) await this.refresh(id, ok ? "report" : "quiet");
  }

  private async cancel(id: bigint): Promise<void> {
    const { session } = this.deps;
    const live = session.current();
    const skus = (this.orders.get(id)?.items ?? []).map((i) => i.sku);
    const ok = await session.run(`order-${id}`, `Cancel order ${id}`, session.settings.loms, async () => {
      await session.api.loms.cancelOrder({ orderId: id });
    });
    if (!live()) return;
    await Promise.all([this.refresh(id, ok ? "report" : "quiet"), this.deps.reloadStocks(skus)]);
  }

  private async find(text: string): Promise<void> {
    const { session } = this.deps;
    const id = parseId(text);
    if (id === null) {
      this.deps.failures.invalid(`Find order ${text.trim() || "(empty)"}`, "order id: enter a whole number from 1 to 9223372036854775807");
      return;
    }
    await session.run("find", `Find order ${id}`, session.settings.loms, async (live) => {
      const seq = this.beginRead(id);
      const res = await session.api.loms.listOrder({ orderId: id });
      if (!live() || this.seq.get(id) !== seq) return;
      this.read(id, res);
      if (res.user === session.user) this.remember(session.user, id, session.settings.loms);
      else this.lookedUp.add(id);
      this.render();
      // A card already shown is not rebuilt: it is updated in place.
      this.changed(id);
      await this.deps.loadProducts(res.items.map((i) => i.sku));
    });
  }
}
