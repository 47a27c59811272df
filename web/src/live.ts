// Live status for the orders panel: which orders follow their status over
// WatchOrder streams (watch.ts), and what the streams' messages change. Open
// orders shown are followed newest first, as many at once as the pool
// allows, and none while the tab is hidden.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe } from "./api.js";
import { isFinal, newer } from "./format.js";
import type { Order } from "./order-card.js";
import type { Session } from "./session.js";
import { WatchPool, watchOrder } from "./watch.js";

// Open orders watched at once (see WatchPool): three streams leave three of
// the browser's six HTTP/1.1 connections to a host for everything else.
export const maxWatches = 3;

export interface LiveDeps {
  session: Session;
  /** orders is what the page knows of its orders, which the streams update. */
  orders: Map<bigint, Order>;
  /** shown lists the orders on screen, newest first. */
  shown(): bigint[];
  /** unread is told of an order a stream reached that was never read: its items are unknown. */
  unread(id: bigint): void;
  /** changed is told of an order whose status changed or whose stream ended for good. */
  changed(id: bigint): void;
  /** show redraws an order whose stream's state changed. */
  show(id: bigint): void;
}

export class LiveStatus {
  private readonly pool: WatchPool;

  constructor(private readonly deps: LiveDeps) {
    this.pool = new WatchPool(
      maxWatches,
      (id) => this.start(id),
      (id, why) => {
        const o = this.order(id);
        if (o.live === why) return;
        o.live = why;
        o.liveReason = undefined;
        deps.show(id);
      },
    );
    document.addEventListener("visibilitychange", () => this.sync());
  }

  /**
   * sync streams the status of every open order shown (newest first, as
   * many as the pool allows) and of those not read yet, and of no other.
   */
  sync(): void {
    const wanted = this.deps.shown().filter((id) => {
      const o = this.deps.orders.get(id);
      return !o?.gone && !o?.unwatchable && (o?.status === undefined || !isFinal(o.status));
    });
    this.pool.sync(wanted, document.visibilityState === "hidden");
  }

  /** stopAll ends every stream, before a change of connection. */
  stopAll(): void {
    this.pool.stopAll();
  }

  /** order is what the page knows of an order, made empty if nothing. */
  private order(id: bigint): Order {
    let o = this.deps.orders.get(id);
    if (!o) this.deps.orders.set(id, (o = { items: [] }));
    return o;
  }

  private start(id: bigint): () => void {
    const { session } = this.deps;
    const live = session.current();
    const order = () => this.order(id);
    return watchOrder(session.api.loms, id, {
      change: (msg) => {
        if (!live()) return;
        const o = order();
        o.status = newer(o.status, msg.status);
        if (msg.payBy) o.payBy = timestampDate(msg.payBy);
        // An order shown before LOMS could be read (it was down) learns its
        // items once a stream reaches it.
        if (o.user === undefined) this.deps.unread(id);
        this.deps.changed(id);
      },
      live: (s, reason) => {
        if (!live()) return;
        const o = order();
        o.live = s;
        o.liveReason = reason === undefined ? undefined : describe(reason, session.settings.loms);
        this.deps.show(id);
      },
      end: (err) => {
        if (!live()) return;
        this.pool.ended(id);
        const o = order();
        o.live = undefined;
        o.liveReason = undefined;
        if (err !== undefined) {
          const e = describe(err, session.settings.loms);
          if (e.code === "not_found") {
            o.gone = true;
            o.error = e;
          } else o.unwatchable = e;
        }
        this.deps.changed(id);
      },
    });
  }
}
