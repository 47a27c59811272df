// The order history panel: the user's orders from LomsService.ListOrders,
// newest first, a page at a time behind a "More" button.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, type API, type ShownError } from "./api.js";
import { h, mount } from "./dom.js";
import { count, dateTime, newer, statusLabel, statusName } from "./format.js";
import type { OrderStatus, OrderSummary } from "./gen/minizon/loms/v1/loms_pb.js";

/** Orders per page: few, so that a short history already pages. */
export const historyPageSize = 5;

export interface HistoryDeps {
  api(): API;
  user(): bigint;
  productName(sku: number): string;
  /** loadProducts fetches the names of skus; the page calls names() as they come. */
  loadProducts(skus: number[]): Promise<void>;
  /** statusOf is what the page knows of an order's status besides the listing (a watched card's), if anything. */
  statusOf(id: bigint): OrderStatus | undefined;
  /** fail reports a failed load a person will want to know about. */
  fail(action: string, e: ShownError): void;
}

/**
 * mergeFirstPage folds a fresh first page into the rows listed so far, so
 * that orders made since appear at the top without losing the pages
 * already loaded. Pages are keyset pages by order id, newest first: where
 * the fresh page reaches into the listed rows, it replaces them down to its
 * last id and the older rows follow, with the token that continues after
 * them; where it does not (more new orders than a page), the listing
 * starts over from the fresh page.
 */
export function mergeFirstPage(
  rows: OrderSummary[],
  next: string,
  page: OrderSummary[],
  pageNext: string,
): { rows: OrderSummary[]; next: string } {
  if (rows.length === 0 || page.length === 0 || pageNext === "") return { rows: page, next: pageNext };
  const low = page[page.length - 1].orderId;
  if (low > rows[0].orderId) return { rows: page, next: pageNext };
  const older = rows.filter((r) => r.orderId < low);
  return { rows: [...page, ...older], next: older.length > 0 ? next : pageNext };
}

export class History {
  readonly root: HTMLElement;
  private readonly list = h("div", {});
  private readonly note = h("p", { class: "warn small", "data-testid": "history-error", hidden: true });
  private readonly more: HTMLButtonElement;
  private rows: OrderSummary[] = [];
  private next = "";
  private loaded = false;
  private loading = false;
  // A reload or refresh makes the answers to older requests stale.
  private version = 0;

  constructor(private readonly deps: HistoryDeps) {
    this.more = h(
      "button",
      { type: "button", class: "ghost wide", "data-testid": "history-more", hidden: true, onclick: () => void this.loadMore() },
      "More",
    );
    this.root = h(
      "section",
      { class: "panel history", "data-testid": "history", "aria-label": "Order history" },
      h("div", { class: "panel-head" }, h("h2", {}, "Order history")),
      this.list,
      this.note,
      this.more,
    );
    this.render();
  }

  /** reload lists the current user's orders from the first page. */
  async reload(): Promise<void> {
    this.rows = [];
    this.next = "";
    this.loaded = false;
    this.render();
    await this.fetchFirst("report");
  }

  /**
   * refresh reads the first page again and merges it into the listing,
   * after the page made an order; a failure is only noted in the panel.
   */
  async refresh(): Promise<void> {
    await this.fetchFirst("quiet");
  }

  /** update shows an order's newer status, if it is listed. */
  update(id: bigint): void {
    if (this.rows.some((r) => r.orderId === id)) this.render();
  }

  /** names redraws the rows that list sku, whose name arrived. */
  names(sku: number): void {
    if (this.rows.some((r) => r.items.some((i) => i.sku === sku))) this.render();
  }

  private async fetchFirst(mode: "report" | "quiet"): Promise<void> {
    const v = ++this.version;
    const api = this.deps.api();
    this.loading = true;
    this.render();
    try {
      const res = await api.loms.listOrders({ user: this.deps.user(), pageSize: historyPageSize });
      if (v !== this.version) return;
      ({ rows: this.rows, next: this.next } = mergeFirstPage(this.loaded ? this.rows : [], this.next, res.orders, res.nextPageToken));
      this.loaded = true;
      this.shown();
    } catch (err) {
      if (v !== this.version) return;
      this.failed(err, api, mode === "report" ? "Load the order history" : "");
    } finally {
      if (v === this.version) {
        this.loading = false;
        this.render();
      }
    }
  }

  private async loadMore(): Promise<void> {
    if (this.loading || !this.next) return;
    const v = this.version;
    const api = this.deps.api();
    this.loading = true;
    this.render();
    try {
      const res = await api.loms.listOrders({ user: this.deps.user(), pageSize: historyPageSize, pageToken: this.next });
      if (v !== this.version) return;
      // Keyset pages never repeat an order; the check keeps a listing
      // without duplicates whatever a server answers.
      const seen = new Set(this.rows.map((r) => r.orderId));
      this.rows.push(...res.orders.filter((r) => !seen.has(r.orderId)));
      this.next = res.nextPageToken;
      this.shown();
    } catch (err) {
      if (v !== this.version) return;
      this.failed(err, api, "Load more of the order history");
    } finally {
      if (v === this.version) {
        this.loading = false;
        this.render();
      }
    }
  }

  private shown(): void {
    this.note.hidden = true;
    void this.deps.loadProducts(this.rows.flatMap((r) => r.items.map((i) => i.sku)));
  }

  private failed(err: unknown, api: API, action: string): void {
    const e = describe(err, api.settings.loms);
    this.note.textContent = `The order history could not be read: ${e.code}: ${e.message}`;
    this.note.hidden = false;
    if (action) this.deps.fail(action, e);
  }

  private render(): void {
    let body: HTMLElement;
    if (!this.loaded) body = h("p", { class: "muted" }, this.loading ? "Loading your orders…" : "");
    else if (this.rows.length === 0) body = h("p", { class: "muted", "data-testid": "history-empty" }, "No orders yet.");
    else body = h("ul", { class: "order-list" }, this.rows.map((r) => this.row(r)));
    mount(this.list, body);
    this.more.hidden = !this.loaded || this.next === "";
    this.more.disabled = this.loading;
    this.more.textContent = this.loading && this.loaded ? "Loading…" : "More";
  }

  private row(r: OrderSummary): HTMLElement {
    const status = newer(r.status, this.deps.statusOf(r.orderId)) ?? r.status;
    const created = r.createdAt && timestampDate(r.createdAt);
    return h(
      "li",
      { class: "order history-row", "data-testid": `history-order-${r.orderId}` },
      h(
        "div",
        { class: "order-head" },
        h("b", {}, `Order ${r.orderId}`),
        h(
          "span",
          { class: `status s-${statusName(status).toLowerCase()}`, "data-testid": "history-status", "data-status": statusName(status) },
          statusLabel(status),
        ),
      ),
      created && h("time", { class: "muted small", datetime: created.toISOString(), "data-testid": "history-created" }, dateTime(created)),
      h("p", { class: "order-items small" }, r.items.map((i) => `${this.deps.productName(i.sku)} × ${count(i.count)}`).join(", ")),
    );
  }
}
