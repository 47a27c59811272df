// The catalog panel: a page of skus from ProductService at a time, each on
// a card with its name and price, its stock in LOMS's warehouses, and a form
// that adds it to the cart. The catalog also keeps the names and prices the
// other panels show.
import { describe, type ShownError } from "./api.js";
import { h, mount } from "./dom.js";
import type { Failures } from "./failures.js";
import { count, hue, money } from "./format.js";
import type { Stock } from "./gen/minizon/loms/v1/loms_pb.js";
import type { Session } from "./session.js";

const pageSize = 12;

interface Product {
  name: string;
  price: number;
}

interface Card {
  root: HTMLElement;
  thumb: HTMLElement;
  title: HTMLElement;
  price: HTMLElement;
  stock: HTMLElement;
}

export interface CatalogDeps {
  session: Session;
  failures: Failures;
  /** addToCart puts n of sku in the cart, as an action. */
  addToCart(sku: number, n: number): Promise<void>;
  /** named is told that sku's name, or why it is unknown, arrived. */
  named(sku: number): void;
}

export class Catalog {
  readonly root: HTMLElement;
  private readonly pager = h("div", { class: "pager" });
  private readonly grid = h("div", {});
  // pageStarts[i] is the start_after_sku of page i; page 0 starts at 0.
  private pageStarts = [0];
  private page = 0;
  private skus: number[] = [];
  private hasNext = false;
  private phase: "loading" | "ready" | "failed" = "loading";
  private readonly products = new Map<number, Product | ShownError>();
  private readonly stocks = new Map<number, Stock[] | ShownError>();
  private pageSeq = 0;
  private readonly stockSeq = new Map<number, number>();
  private readonly cards = new Map<number, Card>();

  constructor(private readonly deps: CatalogDeps) {
    this.root = h(
      "section",
      { class: "panel catalog", "data-testid": "catalog", "aria-label": "Catalog" },
      h("div", { class: "panel-head" }, h("h2", {}, "Catalog"), this.pager),
      this.grid,
    );
  }

  /** reset forgets what the old connection said and goes back to the first page. */
  reset(): void {
    this.products.clear();
    this.stocks.clear();
    this.stockSeq.clear();
    this.page = 0;
    this.pageStarts = [0];
  }

  /** load reads the current page: its skus, then their products and stock. */
  async load(): Promise<void> {
    const { session } = this.deps;
    const seq = ++this.pageSeq;
    const live = session.current();
    this.phase = "loading";
    this.renderPager();
    try {
      const res = await session.api.product.listSkus({
        token: session.settings.token,
        startAfterSku: this.pageStarts[this.page],
        count: pageSize,
      });
      if (seq !== this.pageSeq || !live()) return;
      this.skus = res.skus;
      this.hasNext = res.skus.length === pageSize;
      this.phase = "ready";
    } catch (err) {
      if (seq !== this.pageSeq || !live()) return;
      this.skus = [];
      this.hasNext = false;
      this.phase = "failed";
      this.deps.failures.fail("Load the catalog", describe(err, session.settings.product));
    }
    this.renderPager();
    this.renderGrid();
    await Promise.all([this.loadProducts(this.skus), ...this.skus.map((sku) => this.loadStock(sku))]);
  }

  /** loadProducts fetches the names and prices the page does not know yet. */
  async loadProducts(skus: Iterable<number>): Promise<void> {
    const { session } = this.deps;
    const live = session.current();
    const missing = [...new Set(skus)].filter((sku) => {
      const p = this.products.get(sku);
      return !p || !("name" in p);
    });
    await Promise.all(
      missing.map(async (sku) => {
        let p: Product | ShownError;
        try {
          const res = await session.api.product.getProduct({ token: session.settings.token, sku });
          p = { name: res.name, price: res.price };
        } catch (err) {
          p = describe(err, session.settings.product);
        }
        if (!live()) return;
        this.products.set(sku, p);
        this.updateCard(sku);
        this.deps.named(sku);
      }),
    );
  }

  /** reloadStocks reads again the stock of those of skus on the page now. */
  async reloadStocks(skus: number[]): Promise<void> {
    await Promise.all(skus.filter((s) => this.skus.includes(s)).map((sku) => this.loadStock(sku)));
  }

  productName(sku: number): string {
    const p = this.products.get(sku);
    return p && "name" in p ? p.name : `sku ${sku}`;
  }

  render(): void {
    this.renderPager();
    this.renderGrid();
  }

  private async loadStock(sku: number): Promise<void> {
    const { session } = this.deps;
    const live = session.current();
    const seq = (this.stockSeq.get(sku) ?? 0) + 1;
    this.stockSeq.set(sku, seq);
    let s: Stock[] | ShownError;
    try {
      s = (await session.api.loms.stocks({ sku })).stocks;
    } catch (err) {
      s = describe(err, session.settings.loms);
    }
    if (!live() || this.stockSeq.get(sku) !== seq) return;
    this.stocks.set(sku, s);
    this.updateCard(sku);
  }

  private renderPager(): void {
    const loading = this.phase === "loading";
    mount(
      this.pager,
      h(
        "button",
        {
          type: "button",
          class: "ghost",
          "data-testid": "page-prev",
          disabled: this.page === 0 || loading,
          onclick: () => {
            this.page--;
            void this.load();
          },
        },
        "← Previous",
      ),
      h("span", { "data-testid": "page-label" }, `Page ${this.page + 1}`),
      h(
        "button",
        {
          type: "button",
          class: "ghost",
          "data-testid": "page-next",
          disabled: !this.hasNext || loading,
          onclick: () => {
            this.pageStarts[this.page + 1] = this.skus[this.skus.length - 1];
            this.page++;
            void this.load();
          },
        },
        "Next →",
      ),
    );
  }

  private renderGrid(): void {
    this.cards.clear();
    if (this.phase === "failed") {
      mount(
        this.grid,
        h(
          "p",
          { class: "warn" },
          "The catalog could not be loaded: see the error above. ",
          h("button", { type: "button", class: "ghost", "data-testid": "catalog-retry", onclick: () => void this.load() }, "Retry"),
        ),
      );
      return;
    }
    if (this.skus.length === 0) {
      mount(this.grid, h("p", { class: "muted" }, this.phase === "loading" ? "Loading the catalog…" : "No products to show."));
      return;
    }
    mount(this.grid, h("div", { class: "grid" }, this.skus.map((sku) => this.productCard(sku))));
  }

  private productCard(sku: number): HTMLElement {
    const { session } = this.deps;
    const qty = h("input", {
      type: "number",
      min: "1",
      max: "65535",
      step: "1",
      value: "1",
      "aria-label": `Quantity of sku ${sku}`,
      "data-testid": `qty-${sku}`,
    });
    const card: Card = {
      root: h("article", { class: "card", "data-testid": `product-${sku}` }),
      thumb: h("div", { class: "thumb", style: `--hue: ${hue(sku)}` }, "·"),
      title: h("h3", {}, "…"),
      price: h("span", { class: "price" }),
      stock: h("div", { class: "stock-box", "data-testid": `stock-${sku}` }, h("p", { class: "muted" }, "Checking stock…")),
    };
    mount(
      card.root,
      card.thumb,
      h(
        "div",
        { class: "card-body" },
        card.title,
        h("p", { class: "meta" }, card.price, h("span", { class: "sku" }, `sku ${sku}`)),
        card.stock,
        h(
          "form",
          {
            class: "add",
            onsubmit: (ev: Event) => {
              ev.preventDefault();
              if (session.busy.has(`add-${sku}`)) return;
              const n = Number(qty.value);
              if (!Number.isInteger(n) || n < 1 || n > 65535) {
                this.deps.failures.invalid(`Add ${this.productName(sku)} to the cart`, "count: enter a whole number from 1 to 65535");
                return;
              }
              qty.value = "1";
              void this.deps.addToCart(sku, n);
            },
          },
          qty,
          h(
            "button",
            {
              type: "submit",
              "data-testid": `add-${sku}`,
              "data-busy-key": `add-${sku}`,
              "aria-label": `Add sku ${sku} to the cart`,
              disabled: session.busy.has(`add-${sku}`),
            },
            "Add to cart",
          ),
        ),
      ),
    );
    this.cards.set(sku, card);
    this.updateCard(sku);
    return card.root;
  }

  /** updateCard fills in what is known of a product, leaving its form alone. */
  private updateCard(sku: number): void {
    const card = this.cards.get(sku);
    if (!card) return;
    const p = this.products.get(sku);
    if (p && "name" in p) {
      card.thumb.textContent = p.name.slice(0, 1);
      card.title.textContent = p.name;
      card.price.textContent = money(p.price);
    } else if (p) {
      mount(card.title, h("span", { class: "warn" }, `${p.code}: ${p.message}`));
    }
    const stocks = this.stocks.get(sku);
    if (stocks === undefined) return;
    if (!Array.isArray(stocks)) {
      mount(card.stock, h("small", { class: "warn" }, "Stock unknown"), h("p", { class: "warn" }, `${stocks.code}: ${stocks.message}`));
      return;
    }
    const available = stocks.reduce((sum, s) => sum + s.count, 0n);
    mount(
      card.stock,
      available > 0n ? h("small", {}, `In stock: ${count(available)}`) : h("small", { class: "warn" }, "Out of stock"),
      h(
        "ul",
        { class: "stock" },
        stocks.map((s) => h("li", {}, h("span", {}, `Warehouse ${s.warehouseId}`), h("b", {}, count(s.count)))),
      ),
    );
  }
}
