// The orders a user placed or found, remembered in the browser for later
// visits: newest first, the last 20, per user and per LOMS.
import { parseId } from "./format.js";
import { normalize } from "./settings.js";

const kept = 20;

function storageKey(user: bigint, loms: string): string {
  // Order ids belong to one LOMS: another one's order 1 is someone else's.
  return `minizon.orders.${normalize(loms)}.${user}`;
}

/** rememberedOrders lists the orders remembered for user at loms. */
export function rememberedOrders(storage: Storage, user: bigint, loms: string): bigint[] {
  try {
    const ids = JSON.parse(storage.getItem(storageKey(user, loms)) ?? "[]") as unknown[];
    return ids.map((s) => parseId(String(s))).filter((id): id is bigint => id !== null);
  } catch {
    return [];
  }
}

/** rememberOrder puts order id first among those remembered for user at loms. */
export function rememberOrder(storage: Storage, user: bigint, id: bigint, loms: string): void {
  const ids = [id, ...rememberedOrders(storage, user, loms).filter((o) => o !== id)].slice(0, kept);
  storage.setItem(storageKey(user, loms), JSON.stringify(ids.map(String)));
}
