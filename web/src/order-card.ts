// One order's card in the orders panel, built once and updated in place:
// its status, items, payment countdown (countdown.ts), whether its status
// is live (watch.ts), and Pay and Cancel while it is open.
import type { ShownError } from "./api.js";
import { showCountdown } from "./countdown.js";
import { h, mount } from "./dom.js";
import { count, isFinal, isOpen, statusLabel, statusName } from "./format.js";
import { OrderStatus, type OrderItem } from "./gen/minizon/loms/v1/loms_pb.js";
import { maxWatches } from "./live.js";
import type { Session } from "./session.js";
import type { Live } from "./watch.js";

/** Order is what the page knows of an order. */
export interface Order {
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

export interface OrderCardDeps {
  session: Session;
  productName(sku: number): string;
  pay(id: bigint): void;
  cancel(id: bigint): void;
}

export class OrderCard {
  readonly root: HTMLElement;
  private readonly who = h("small", { class: "muted" });
  private readonly status = h("span", { class: "status", "data-testid": "order-status" }, "…");
  private readonly items = h("ul", { class: "order-items" });
  private readonly error = h("p", { class: "warn small", "data-testid": "order-error" });
  private readonly actions = h("div", { class: "row" });
  /** Where the status stream stands. */
  private readonly live = h("small", { class: "live", "data-testid": "order-live", "data-live": "off", hidden: true });
  /** Time left to pay. */
  private readonly countdown = h("small", { class: "countdown", "data-testid": "order-countdown", role: "timer", hidden: true });
  private open?: boolean;

  constructor(
    private readonly id: bigint,
    private readonly deps: OrderCardDeps,
  ) {
    this.root = h("li", { class: "order", "data-testid": `order-${id}` });
    mount(
      this.root,
      h("div", { class: "order-head" }, h("b", {}, `Order ${id}`), this.who, this.status),
      h("div", { class: "order-meta" }, this.countdown, this.live),
      this.items,
      this.error,
      this.actions,
    );
  }

  /** show shows an order's state, in place. */
  show(o: Order | undefined): void {
    const { id, deps } = this;
    this.who.textContent = o?.user !== undefined && o.user !== deps.session.user ? `user ${o.user}` : "";
    if (o?.status !== undefined) {
      this.status.textContent = statusLabel(o.status);
      this.status.dataset.status = statusName(o.status);
      this.status.className = `status s-${statusName(o.status).toLowerCase()}`;
    } else {
      this.status.textContent = "…";
      delete this.status.dataset.status;
      this.status.className = "status";
    }
    const lines = (o?.items ?? []).map((i) => `${deps.productName(i.sku)} × ${count(i.count)}`);
    if (lines.join("\n") !== [...this.items.children].map((li) => li.textContent).join("\n")) {
      mount(this.items, lines.map((l) => h("li", {}, l)));
    }
    this.error.textContent = o?.error ? `${o.error.code}: ${o.error.message}` : "";
    this.error.hidden = !o?.error;
    showCountdown(this.countdown, o?.status === OrderStatus.AWAITING_PAYMENT && !o.gone ? o.payBy : undefined);
    this.showLive(o);
    // The buttons are made when the order becomes open and removed when it
    // closes, never in between: a status update must not swap them under
    // the pointer.
    const open = o?.status !== undefined && isOpen(o.status) && !o.gone;
    if (open !== this.open) {
      this.open = open;
      mount(
        this.actions,
        open && [
          deps.session.button("Pay", `order-${id}`, () => deps.pay(id), {
            class: "primary",
            "data-testid": `pay-${id}`,
            "aria-label": `Pay order ${id}`,
          }),
          deps.session.button("Cancel", `order-${id}`, () => deps.cancel(id), {
            class: "ghost",
            "data-testid": `cancel-${id}`,
            "aria-label": `Cancel order ${id}`,
          }),
        ],
      );
    }
  }

  /** showLive says whether the order's status is live. */
  private showLive(o: Order | undefined): void {
    const el = this.live;
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
}
