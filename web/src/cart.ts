// The cart panel: the user's cart from Checkout, a line per product with one
// more, one less and remove, its total, and Purchase, which makes it an order.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe } from "./api.js";
import { h, keepFocus, mount, type Child } from "./dom.js";
import type { Failures } from "./failures.js";
import { count, money } from "./format.js";
import type { CartItem } from "./gen/minizon/checkout/v1/checkout_pb.js";
import { OrderStatus } from "./gen/minizon/loms/v1/loms_pb.js";
import type { Session } from "./session.js";

export interface CartDeps {
  session: Session;
  failures: Failures;
  productName(sku: number): string;
  /** remember files order id under user and the LOMS it was placed with. */
  remember(user: bigint, id: bigint, loms: string): void;
  /** placed shows an order Purchase just made. */
  placed(id: bigint, user: bigint, status: OrderStatus): void;
  /** ordered reads again what a new order changed: the order, the history, the stock of skus. */
  ordered(id: bigint, skus: number[]): Promise<unknown>;
}

export class Cart {
  readonly root = h("section", { class: "panel cart", "data-testid": "cart", "aria-label": "Cart" });
  private cart: { items: CartItem[]; total: bigint } | null = null;
  private failed = false;
  private seq = 0;

  constructor(private readonly deps: CartDeps) {}

  /** reset forgets the cart shown, that of another user or connection. */
  reset(): void {
    this.cart = null;
    this.failed = false;
  }

  /** load shows the current user's cart; it reports its own failure. */
  async load(): Promise<void> {
    const { session } = this.deps;
    const seq = ++this.seq;
    const live = session.current();
    try {
      const res = await session.api.checkout.listCart({ user: session.user });
      if (seq !== this.seq || !live()) return;
      this.cart = { items: res.items, total: res.totalPrice };
      this.failed = false;
    } catch (err) {
      if (seq !== this.seq || !live()) return;
      this.failed = true;
      this.deps.failures.fail("Load the cart", describe(err, session.settings.checkout));
    }
    this.render();
  }

  async add(sku: number, n: number): Promise<void> {
    const { session } = this.deps;
    await this.change(`add-${sku}`, `Add ${n} × ${this.deps.productName(sku)} to the cart`, () =>
      session.api.checkout.addToCart({ user: session.user, sku, count: n }),
    );
  }

  async remove(sku: number, n: number): Promise<void> {
    const { session } = this.deps;
    await this.change(`del-${sku}`, `Remove ${n} × ${this.deps.productName(sku)} from the cart`, () =>
      session.api.checkout.deleteFromCart({ user: session.user, sku, count: n }),
    );
  }

  /**
   * change runs one change of the cart as an action. A change that failed
   * may still have been applied (a timeout after the server's commit): the
   * cart is read again either way.
   */
  private async change(key: string, action: string, change: () => Promise<unknown>): Promise<void> {
    await this.deps.session.run(key, action, this.deps.session.settings.checkout, async () => {
      try {
        await change();
      } finally {
        await this.load();
      }
    });
  }

  /**
   * placeOrder calls Purchase, once more if the answer was lost on the way
   * (timeout, network): Purchase is idempotent, so the second call answers
   * with the order the first one made, if it made one.
   */
  private async placeOrder(user: bigint) {
    const { session } = this.deps;
    try {
      return await session.api.checkout.purchase({ user });
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code !== Code.DeadlineExceeded && code !== Code.Unavailable && code !== Code.Unknown) throw err;
      return await session.api.checkout.purchase({ user });
    }
  }

  private async purchase(): Promise<void> {
    const { session } = this.deps;
    const user = session.user;
    const skus = this.cart?.items.map((i) => i.sku) ?? [];
    let placed: { id: bigint; status: OrderStatus } | undefined;
    // The cart is reloaded inside the action, so Purchase stays disabled
    // until the emptied cart is on screen.
    // Orders are filed under the LOMS they were placed with, even if the
    // connection changes before the answer.
    const loms = session.settings.loms;
    const ok = await session.run("purchase", "Purchase", session.settings.checkout, async (live) => {
      try {
        const res = await this.placeOrder(user);
        this.deps.remember(user, res.orderId, loms);
        if (!live()) return;
        placed = { id: res.orderId, status: res.status };
        this.deps.placed(res.orderId, user, res.status);
      } finally {
        await this.load();
      }
    });
    if (!ok || !placed) return;
    if (placed.status === OrderStatus.FAILED) {
      this.deps.failures.fail(
        "Purchase",
        { code: "", message: `Order ${placed.id} failed: the warehouses could not reserve every item. Your cart is as it was.` },
        true,
      );
    }
    await this.deps.ordered(placed.id, skus);
  }

  /** showBusy labels Purchase by whether it is in flight. */
  showBusy(): void {
    const purchase = this.root.querySelector<HTMLButtonElement>('[data-testid="purchase"]');
    if (purchase) purchase.textContent = this.deps.session.busy.has("purchase") ? "Placing the order…" : "Purchase";
  }

  render(): void {
    const { session } = this.deps;
    const c = this.cart;
    let body: Child;
    if (c === null && this.failed)
      body = h(
        "p",
        { class: "warn" },
        "The cart could not be loaded: see the error above. ",
        h("button", { type: "button", class: "ghost", "data-testid": "cart-retry", onclick: () => void this.load() }, "Retry"),
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
                session.button("−", `del-${i.sku}`, () => void this.remove(i.sku, 1), {
                  "aria-label": `One less ${i.name}`,
                  "data-testid": `less-${i.sku}`,
                }),
                h("span", { "data-testid": `count-${i.sku}` }, count(i.count)),
                session.button("+", `add-${i.sku}`, () => void this.add(i.sku, 1), {
                  "aria-label": `One more ${i.name}`,
                  "data-testid": `more-${i.sku}`,
                }),
              ),
              h("span", { class: "line-total" }, money(BigInt(i.price) * BigInt(i.count))),
              session.button("Remove", `del-${i.sku}`, () => void this.remove(i.sku, i.count), {
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
      this.failed &&
      h(
        "p",
        { class: "warn small" },
        "The cart could not be read again and may be out of date. ",
        h("button", { type: "button", class: "ghost", "data-testid": "cart-retry", onclick: () => void this.load() }, "Retry"),
      );
    keepFocus(this.root, () =>
      mount(
        this.root,
        h("div", { class: "panel-head" }, h("h2", {}, "Cart"), h("small", { class: "muted" }, `user ${session.user}`)),
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
            disabled: empty || session.busy.has("purchase"),
            onclick: () => void this.purchase(),
          },
          session.busy.has("purchase") ? "Placing the order…" : "Purchase",
        ),
      ),
    );
  }
}
