// Live order status: one LomsService.WatchOrder stream per open order shown,
// reconnected with exponential backoff when it is lost, and a pool that
// bounds how many streams the page holds at once.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { isFinal } from "./format.js";
import type { LomsService, OrderStatus, WatchOrderResponse } from "./gen/minizon/loms/v1/loms_pb.js";

/**
 * Live is where an order's watch stands: connecting (the first attempt),
 * live (a message arrived on the current stream), reconnecting (the stream
 * was lost; waiting to try again), queued (no free stream: see WatchPool),
 * paused (the tab is hidden).
 */
export type Live = "connecting" | "live" | "reconnecting" | "queued" | "paused";

export interface WatchOptions {
  /** The wait before the first retry; it doubles after each failed attempt. */
  minDelayMs: number;
  /** The longest wait between attempts. */
  maxDelayMs: number;
  /**
   * A stream that brings no message for this long is taken for dead and
   * opened again: LOMS repeats the last state every 20 s or so while
   * nothing changes, so silence means a connection lost without a reset
   * (a sleeping laptop, a dropped network).
   */
  silenceMs: number;
}

export const defaultWatchOptions: WatchOptions = { minDelayMs: 250, maxDelayMs: 5000, silenceMs: 45_000 };

export interface WatchHandlers {
  /** A message whose status differs from the last one's (always the first). */
  change(msg: WatchOrderResponse): void;
  /** The watch's state changed; reason is what ended the last stream. */
  live(state: Live, reason?: unknown): void;
  /**
   * The watch ended by itself: the order reached a final status (no err),
   * or LOMS refused to watch it in a way no retry fixes (err: not_found,
   * invalid_argument, unimplemented and the like).
   */
  end(err?: unknown): void;
}

/** Codes that a new attempt cannot change: the watch gives up on them. */
const permanent = new Set([
  Code.NotFound,
  Code.InvalidArgument,
  Code.Unimplemented,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.FailedPrecondition,
]);

/**
 * watchOrder follows an order's status until it is final, the watch fails
 * for good, or the returned function is called. A lost stream (network
 * error, unavailable, resource_exhausted, LOMS restarting, silence) is
 * opened again after minDelayMs, doubling up to maxDelayMs; a message
 * resets the delay. Keep-alives (the same status again) are not changes.
 * Handlers are called only while the watch is not stopped.
 */
export function watchOrder(
  loms: Client<typeof LomsService>,
  orderId: bigint,
  on: WatchHandlers,
  opt: WatchOptions = defaultWatchOptions,
): () => void {
  let stopped = false;
  // A final status arrived: LOMS ends the stream right after it, so the
  // request is left to finish by itself rather than cut.
  let final = false;
  let attempt: AbortController | undefined;
  let wake: (() => void) | undefined;
  let shown: Live | undefined;
  const live = (s: Live, reason?: unknown) => {
    // Every message says "live": only the first of a stream is news.
    if (stopped || (s === "live" && shown === "live")) return;
    shown = s;
    on.live(s, reason);
  };

  void (async () => {
    // Handlers run after watchOrder returned, never inside the caller's
    // own update.
    await Promise.resolve();
    let last: OrderStatus | undefined;
    let delay = opt.minDelayMs;
    let reason: unknown;
    live("connecting");
    while (!stopped) {
      const ac = new AbortController();
      attempt = ac;
      let silent = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          silent = true;
          ac.abort();
        }, opt.silenceMs);
      };
      try {
        arm();
        // No deadline: the stream lives as long as the order is open.
        for await (const msg of loms.watchOrder({ orderId }, { signal: ac.signal, timeoutMs: 0 })) {
          if (stopped) return;
          arm();
          delay = opt.minDelayMs;
          live("live");
          if (msg.status !== last) {
            last = msg.status;
            on.change(msg);
          }
          if (isFinal(msg.status)) final = true;
        }
        if (stopped) return;
        if (final) {
          stopped = true;
          on.end();
          return;
        }
        // LOMS ends a stream with OK only after a final status: an end
        // without one was cut on the way.
        reason = new ConnectError("the stream ended before the order was final", Code.Unavailable);
      } catch (err) {
        if (stopped) return;
        const ce = ConnectError.from(err);
        if (final) {
          // The connection broke between the final status and the end of
          // the stream: nothing more was to come.
          stopped = true;
          on.end();
          return;
        }
        if (permanent.has(ce.code)) {
          stopped = true;
          on.end(err);
          return;
        }
        reason = silent ? new ConnectError(`no message for ${opt.silenceMs / 1000} s`, Code.DeadlineExceeded) : err;
      } finally {
        clearTimeout(timer);
        attempt = undefined;
      }
      live("reconnecting", reason);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
      delay = Math.min(delay * 2, opt.maxDelayMs);
    }
  })();

  return () => {
    stopped = true;
    if (!final) attempt?.abort();
    wake?.();
  };
}

/**
 * WatchPool holds the watches of the orders a page shows. Browsers open at
 * most six HTTP/1.1 connections to one host, and a stream keeps one busy
 * for as long as it lives: with a stream per open order, a few open orders
 * would leave no connection for the page's other calls, which would then
 * wait for one. So at most max orders are watched at once, the first ones
 * of the list the page asks for (newest first); the others are queued and
 * watched as soon as a slot frees. While the tab is hidden nothing is
 * watched, which frees the connections for the visible tabs of the same
 * browser (they share the six); on its return every order is watched again
 * and its first message is its current state.
 */
export class WatchPool {
  private running = new Map<bigint, () => void>();

  constructor(
    private readonly max: number,
    /** start begins watching an order and returns what stops it. */
    private readonly start: (id: bigint) => () => void,
    /** waiting is told of each order left unwatched, and why. */
    private readonly waiting: (id: bigint, why: "queued" | "paused") => void,
  ) {}

  /**
   * sync watches the first max of wanted (in order of preference) and
   * stops any other watch; paused stops them all.
   */
  sync(wanted: bigint[], paused: boolean): void {
    const keep = new Set(paused ? [] : wanted.slice(0, this.max));
    for (const [id, stop] of this.running) {
      if (keep.has(id)) continue;
      stop();
      this.running.delete(id);
    }
    for (const id of wanted) {
      if (!keep.has(id)) this.waiting(id, paused ? "paused" : "queued");
      else if (!this.running.has(id)) this.running.set(id, this.start(id));
    }
  }

  /** ended forgets a watch that ended by itself, freeing its slot. */
  ended(id: bigint): void {
    this.running.delete(id);
  }

  /** watching lists the orders watched now. */
  watching(): bigint[] {
    return [...this.running.keys()];
  }

  stopAll(): void {
    for (const stop of this.running.values()) stop();
    this.running.clear();
  }
}
