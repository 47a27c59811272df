import { OrderStatus } from "./gen/minizon/loms/v1/loms_pb.js";

const number = new Intl.NumberFormat("en-US");

/** money formats a price; the catalog's prices are whole roubles. */
export function money(v: number | bigint): string {
  // A no-break space keeps the sign on the amount's line.
  return `${number.format(v)}\u00a0₽`;
}

export function count(v: number | bigint): string {
  return number.format(v);
}

/** statusLabel is what a person reads; the wire keeps the spelling "payed". */
export function statusLabel(s: OrderStatus): string {
  switch (s) {
    case OrderStatus.NEW:
      return "New";
    case OrderStatus.AWAITING_PAYMENT:
      return "Awaiting payment";
    case OrderStatus.FAILED:
      return "Failed";
    case OrderStatus.PAYED:
      return "Paid";
    case OrderStatus.CANCELLED:
      return "Cancelled";
    default:
      return "Unknown";
  }
}

/** statusName is the enum's name on the wire, e.g. ORDER_STATUS_PAYED. */
export function statusName(s: OrderStatus): string {
  return "ORDER_STATUS_" + (OrderStatus[s] ?? "UNSPECIFIED");
}

/** isOpen says whether an order's status can still change by a caller. */
export function isOpen(s: OrderStatus): boolean {
  return s === OrderStatus.NEW || s === OrderStatus.AWAITING_PAYMENT;
}

/** isFinal says whether an order's status can never change again. */
export function isFinal(s: OrderStatus): boolean {
  return s === OrderStatus.PAYED || s === OrderStatus.CANCELLED || s === OrderStatus.FAILED;
}

/**
 * stage ranks a status by how far along its order is. An order only moves
 * forward (NEW, then AWAITING_PAYMENT, then a final status), so of two
 * answers that arrived in either order, the later stage is the newer one.
 */
export function stage(s: OrderStatus | undefined): number {
  if (s === undefined || s === OrderStatus.UNSPECIFIED) return 0;
  if (s === OrderStatus.NEW) return 1;
  if (s === OrderStatus.AWAITING_PAYMENT) return 2;
  return 3;
}

/** newer returns the newer of two statuses of one order (see stage). */
export function newer(a: OrderStatus | undefined, b: OrderStatus | undefined): OrderStatus | undefined {
  return stage(b) > stage(a) ? b : a;
}

/** clock formats a duration as mm:ss, rounded up to the next second. */
export function clock(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 60))}:${pad(s % 60)}`;
}

const when = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "medium" });

/** dateTime formats a moment in the reader's time zone. */
export function dateTime(d: Date): string {
  return when.format(d);
}

/** hue gives each product a stable colour for its placeholder picture. */
export function hue(sku: number): number {
  return (Math.imul(sku, 2654435761) >>> 0) % 360;
}

const maxInt64 = 2n ** 63n - 1n;

/** parseId reads a positive int64 id (a user or an order), or null. */
export function parseId(text: string): bigint | null {
  const t = text.trim();
  if (!/^[1-9][0-9]{0,18}$/.test(t)) return null;
  const v = BigInt(t);
  return v <= maxInt64 ? v : null;
}
