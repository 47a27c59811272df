// The storefront in a real browser: the whole journey by clicks against
// `minizon dev`, the page against separately run services allowed and
// refused by CORS, and errors shown with their Connect code.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, healthy, launch, outDir, run, shot, start, startDev } from "./harness.mjs";
import { buyOne, firstProducts, newestOrder, orderStatus, switchUser, timeout, waitCount, waitText, withPage } from "./page.mjs";

/** stockOf reads a card's "In stock: N". */
async function stockOf(page, sku) {
  const small = page.getByTestId(`stock-${sku}`).locator("small");
  await waitText(small, /In stock/);
  return parseMoney(await small.innerText());
}

/** money is the page's price format, for comparing totals. */
function money(n) {
  return `${new Intl.NumberFormat("en-US").format(n)}\u00a0₽`;
}

function parseMoney(s) {
  return Number(s.replace(/[^0-9]/g, ""));
}

/** productPrice waits for a card's name and price and returns the price. */
async function productPrice(page, sku) {
  const price = page.getByTestId(`product-${sku}`).locator(".price");
  await waitText(price, /₽/);
  return parseMoney(await price.innerText());
}

describe("storefront on minizon dev", () => {
  let dev;
  let browser;
  before(async () => {
    // A short payment window, so the page is seen picking up LOMS's own
    // cancellation of an unpaid order; long enough for the journey to pay
    // in time on a slow machine.
    dev = await startDev({ LOMS_PAYMENT_TIMEOUT: "30s" });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await dev?.stop();
  });

  it("is served at / from the printed address, with its assets", async () => {
    assert.match(dev.banner, new RegExp(`Storefront: open ${dev.base}/`));
    const res = await fetch(`${dev.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /text\/html/);
    assert.match(res.headers.get("content-security-policy"), /default-src 'self'/);
    const html = await res.text();
    const asset = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, `no script in ${html}`);
    const js = await fetch(`${dev.base}/${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("cache-control"), /immutable/);
    // The page's handler sits at "/" beside the RPC routes: an RPC to an
    // unknown service is still Unimplemented, not the page.
    const unknown = await fetch(`${dev.base}/acme.v1.Nope/Call`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(unknown.status, 404);
  });

  it("walks the whole journey by clicks", async () => {
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      await switchUser(page, 4101);

      // Browse: names, prices and stock per warehouse, page by page.
      const [a, b] = await firstProducts(page, 2);
      const priceA = await productPrice(page, a);
      const priceB = await productPrice(page, b);
      await waitText(page.getByTestId(`stock-${a}`), /Warehouse \d+/);
      await waitText(page.getByTestId(`stock-${a}`), /In stock: [1-9]/);
      await shot(page, "01-catalog");
      await page.getByTestId("page-next").click();
      await waitText(page.getByTestId("page-label"), "Page 2");
      const [c] = await firstProducts(page, 1);
      await page.getByTestId(`product-${a}`).waitFor({ state: "detached", timeout });
      assert.ok(c > b, `page 2 starts at sku ${c}, after page 1's ${b}`);
      await page.getByTestId("page-prev").click();
      await waitText(page.getByTestId("page-label"), "Page 1");
      await page.getByTestId(`product-${a}`).waitFor({ timeout });

      // Fill the cart: 3 of a, 1 of b; then one less a, and b removed.
      await page.getByTestId(`qty-${a}`).fill("3");
      await page.getByTestId(`add-${a}`).click();
      await waitCount(page, a, 3);
      await page.getByTestId(`add-${b}`).click();
      await waitCount(page, b, 1);
      await waitText(page.getByTestId("cart-total"), money(3 * priceA + priceB));
      await shot(page, "02-cart");
      await page.getByTestId(`less-${a}`).click();
      await waitCount(page, a, 2);
      await page.getByTestId(`remove-${b}`).click();
      await page.getByTestId(`cart-item-${b}`).waitFor({ state: "detached", timeout });
      await waitText(page.getByTestId("cart-total"), money(2 * priceA));
      const name = await page.getByTestId(`cart-item-${a}`).locator("b").innerText();
      assert.ok(name.length > 0);

      // Purchase, then pay: the order goes awaiting payment -> paid, the
      // cart empties and the stock shown drops by what was reserved.
      const stockBefore = parseMoney(await page.getByTestId(`stock-${a}`).locator("small").innerText());
      await page.getByTestId("purchase").click();
      const paid = await newestOrder(page);
      await orderStatus(page, paid, "ORDER_STATUS_AWAITING_PAYMENT");
      await page.getByTestId("cart-empty").waitFor({ timeout });
      await waitText(page.getByTestId(`order-${paid}`), `${name} × 2`);
      await waitText(page.getByTestId(`stock-${a}`).locator("small"), `In stock: ${new Intl.NumberFormat("en-US").format(stockBefore - 2)}`);
      await shot(page, "03-order-awaiting-payment");
      // The order's status streams in (its first message, keep-alives); the
      // card is updated in place, so the button under the pointer stays the
      // same one.
      const payButton = await page.getByTestId(`pay-${paid}`).elementHandle();
      await page.waitForTimeout(2500);
      assert.ok(await payButton.evaluate((el) => el.isConnected), "a status update replaced the Pay button");
      await page.getByTestId(`pay-${paid}`).click();
      await orderStatus(page, paid, "ORDER_STATUS_PAYED");
      await waitText(page.getByTestId(`order-${paid}`).getByTestId("order-status"), "Paid");
      // A paid order offers no Pay button.
      await page.getByTestId(`pay-${paid}`).waitFor({ state: "detached", timeout });
      await shot(page, "04-order-paid");

      // A second order, cancelled: its stock comes back.
      const stockB = await stockOf(page, b);
      const cancelled = await buyOne(page, b);
      assert.notEqual(cancelled, paid);
      await orderStatus(page, cancelled, "ORDER_STATUS_AWAITING_PAYMENT");
      await waitText(page.getByTestId(`stock-${b}`).locator("small"), `In stock: ${new Intl.NumberFormat("en-US").format(stockB - 1)}`);
      await page.getByTestId(`cancel-${cancelled}`).click();
      await orderStatus(page, cancelled, "ORDER_STATUS_CANCELLED");
      await waitText(page.getByTestId(`stock-${b}`).locator("small"), `In stock: ${new Intl.NumberFormat("en-US").format(stockB)}`);
      // Both orders are still listed, each with its own status.
      await orderStatus(page, paid, "ORDER_STATUS_PAYED");

      // The orders survive a reload: they are remembered per user.
      await page.reload();
      await orderStatus(page, paid, "ORDER_STATUS_PAYED");
      await orderStatus(page, cancelled, "ORDER_STATUS_CANCELLED");

      // On a phone's width nothing sticks out sideways, and the cart comes
      // before the catalog.
      await page.setViewportSize({ width: 400, height: 860 });
      await waitText(page.getByTestId(`stock-${a}`), /Warehouse \d+/);
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "the page scrolls sideways at 400px");
      const [cartTop, catalogTop] = await Promise.all(
        ["cart", "catalog"].map((id) => page.getByTestId(id).evaluate((el) => el.getBoundingClientRect().top)),
      );
      assert.ok(cartTop < catalogTop, "the cart is below the catalog at 400px");
      await shot(page, "08-narrow");
    });
  });

  it("watches an open order until LOMS cancels it unpaid", async () => {
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      await switchUser(page, 4102);
      const [a] = await firstProducts(page, 1);
      const id = await buyOne(page, a);
      await orderStatus(page, id, "ORDER_STATUS_AWAITING_PAYMENT");
      // No click: the order's WatchOrder stream brings the cancellation.
      // 30s window + up to 5s for the sweep.
      await page.locator(`[data-testid="order-${id}"] [data-status="ORDER_STATUS_CANCELLED"]`).waitFor({ timeout: 60_000 });
      await page.getByTestId(`pay-${id}`).waitFor({ state: "detached", timeout });
    });
  });

  it("shows an unknown order as not_found, and more than the stock as failed_precondition", async () => {
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      await switchUser(page, 4103);
      await page.getByTestId("find-order-input").fill("987654321");
      await page.getByTestId("find-order").click();
      const error = page.getByTestId("error").first();
      await error.waitFor({ timeout });
      assert.equal(await error.getAttribute("data-code"), "not_found");
      assert.match(await error.innerText(), /not_found/);
      assert.match(await error.innerText(), /Find order 987654321/);
      assert.match(await error.getByTestId("error-message").innerText(), /987654321/);
      await shot(page, "05-error-unknown-order");

      // Dismissed, it goes away.
      await error.getByRole("button", { name: "Dismiss" }).click();
      assert.equal(await page.getByTestId("error").count(), 0);

      // Cancel an order, then find it by id as another user: it shows whose
      // it is and its status, with no Pay button, since LOMS would refuse.
      const [a] = await firstProducts(page, 1);
      const id = await buyOne(page, a);
      await page.getByTestId(`cancel-${id}`).click();
      await orderStatus(page, id, "ORDER_STATUS_CANCELLED");
      await switchUser(page, 4106);
      await page.getByTestId(`order-${id}`).waitFor({ state: "detached", timeout });
      await page.getByTestId("find-order-input").fill(String(id));
      await page.getByTestId("find-order").click();
      await orderStatus(page, id, "ORDER_STATUS_CANCELLED");
      await waitText(page.getByTestId(`order-${id}`), "user 4103");
      assert.equal(await page.getByTestId(`pay-${id}`).count(), 0);
      await switchUser(page, 4103);

      // Adding more than all warehouses hold is refused by Checkout, and the
      // cart stays as it was.
      await page.getByTestId(`qty-${a}`).fill("65535");
      await page.getByTestId(`add-${a}`).click();
      const refused = page.locator('[data-testid="error"][data-code="failed_precondition"]');
      await refused.waitFor({ timeout });
      assert.match(await refused.innerText(), /Add 65535 ×/);
      await page.getByTestId("cart-empty").waitFor({ timeout });
    });
  });
  it("keeps each user's cart to that user", async () => {
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      await switchUser(page, 4104);
      const [a] = await firstProducts(page, 1);
      await page.getByTestId(`add-${a}`).click();
      await waitCount(page, a, 1);
      await switchUser(page, 4105); // waits for an empty cart
      await page.getByTestId("user-input").fill("4104");
      await page.getByTestId("user-switch").click();
      await waitText(page.getByTestId("cart"), "user 4104");
      await waitCount(page, a, 1);
      // An id that is not a positive int64 is refused by the page itself.
      await page.getByTestId("user-input").fill("9223372036854775808");
      await page.getByTestId("user-switch").click();
      const refused = page.getByTestId("error").first();
      await waitText(refused, /user: enter a whole number/);
      assert.equal(await refused.getAttribute("data-code"), "", "a check made in the page has no server code");
      await waitText(page.getByTestId("cart"), "user 4104");
    });
  });

  it("checks the Connection settings, and keeps query-string ones to the tab", async () => {
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      await waitText(page.getByTestId("settings"), "Connection: this server");
      await page.getByTestId("settings").click();
      await page.getByTestId("setting-loms").fill("ftp://nowhere");
      await page.getByTestId("settings-save").click();
      await waitText(page.getByTestId("error").first(), /loms: ftp:\/\/nowhere is not an http\(s\) address/);
      await waitText(page.getByTestId("settings"), "Connection: this server");

      // A link's services apply to its tab only: a new tab is back home.
      const linked = await browser.context.newPage();
      await linked.goto(`${dev.base}/?loms=http://127.0.0.1:9&checkout=javascript:alert(1)`);
      await waitText(linked.getByTestId("settings"), "Connection: custom");
      await waitText(linked.getByTestId("errors"), /\?checkout: javascript:alert\(1\) is not an http\(s\) address/);
      await linked.close();
      const fresh = await browser.context.newPage();
      await fresh.goto(`${dev.base}/`);
      await waitText(fresh.getByTestId("settings"), "Connection: this server");
      await fresh.close();
    });
  });

  // Keep this test last in its suite: sku 1 becomes the first product, out
  // of stock, which the tests above would try to buy.
  it("shows product names as text, never as markup", async () => {
    // sku 1 sorts first in the catalog; its name is an HTML injection.
    const name = "<img src=x onerror=window.__owned=1>Mug";
    const csv = join(outDir, "hostile-catalog.csv");
    writeFileSync(csv, `sku,name,price\n1,${name},100\n`);
    run(["product", "import", csv], { DATABASE_URL: dev.databaseURL("product") });
    await withPage(browser, async (page) => {
      await page.goto(`${dev.base}/`);
      const title = page.getByTestId("product-1").locator("h3");
      await waitText(title, "Mug");
      assert.equal(await title.innerText(), name);
      assert.equal(await page.getByTestId("product-1").locator("img").count(), 0);
      assert.equal(await page.evaluate(() => window.__owned), undefined);
      await waitText(page.getByTestId("stock-1"), "Out of stock");
    });
  });
});

describe("storefront against separately run services (CORS)", () => {
  let dev;
  let browser;
  const services = [];
  let urls;
  before(async () => {
    // minizon dev serves the page (and provides Postgres and Kafka); LOMS,
    // Checkout and ProductService run as their own processes on other
    // ports, allowing only the page's origin.
    dev = await startDev();
    const origin = dev.base;
    const [loms, checkout, product] = [await freePort(), await freePort(), await freePort()];
    urls = {
      loms: `http://127.0.0.1:${loms}`,
      checkout: `http://127.0.0.1:${checkout}`,
      product: `http://127.0.0.1:${product}`,
    };
    const common = { MINIZON_CORS_ORIGINS: origin, MINIZON_LOG_LEVEL: "warn" };
    // Each is pushed as soon as it runs, so that after() stops it even
    // if a later one fails to start.
    services.push(
      await start("loms", ["loms"], {
        ...common,
        MINIZON_ADDR: `127.0.0.1:${loms}`,
        DATABASE_URL: dev.databaseURL("loms"),
        KAFKA_BROKERS: dev.brokers,
      }, () => healthy(urls.loms)),
    );
    services.push(
      await start("product", ["product"], {
        ...common,
        MINIZON_ADDR: `127.0.0.1:${product}`,
        DATABASE_URL: dev.databaseURL("product"),
        PRODUCT_TOKENS: "testtoken",
      }, () => healthy(urls.product)),
    );
    services.push(
      await start("checkout", ["checkout"], {
        ...common,
        MINIZON_ADDR: `127.0.0.1:${checkout}`,
        DATABASE_URL: dev.databaseURL("checkout"),
        LOMS_ADDR: urls.loms,
        PRODUCT_ADDR: urls.product,
        PRODUCT_TOKEN: "testtoken",
      }, () => healthy(urls.checkout)),
    );
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    for (const s of services.reverse()) await s.stop();
    await dev?.stop();
  });

  function pageURL(base) {
    const q = new URLSearchParams(urls);
    return `${base}/?${q}`;
  }

  it("works cross-origin from an allowed origin", async () => {
    await withPage(browser, async (page) => {
      const hosts = new Set();
      page.on("request", (r) => {
        const u = new URL(r.url());
        if (/^\/(minizon|route256)\./.test(u.pathname)) hosts.add(u.host);
      });
      await page.goto(pageURL(dev.base));
      await waitText(page.getByTestId("settings"), "Connection: custom");
      await switchUser(page, 4201);
      const [a] = await firstProducts(page, 1);
      await productPrice(page, a);
      await waitText(page.getByTestId(`stock-${a}`), /Warehouse \d+/);
      const id = await buyOne(page, a);
      await orderStatus(page, id, "ORDER_STATUS_AWAITING_PAYMENT");
      await page.getByTestId(`pay-${id}`).click();
      await orderStatus(page, id, "ORDER_STATUS_PAYED");
      await shot(page, "06-cross-origin");
      // Every RPC went to the separate services, none to the page's server.
      assert.deepEqual([...hosts].sort(), Object.values(urls).map((u) => new URL(u).host).sort());
      assert.equal(await page.getByTestId("error").count(), 0);
    });
  });

  it("is refused from an origin not allowed, and says so", async () => {
    // localhost is another origin than 127.0.0.1: the same page, served by
    // the same server, is not on the services' allow-list.
    await withPage(browser, async (page) => {
      const other = dev.base.replace("127.0.0.1", "localhost");
      await page.goto(pageURL(other));
      const error = page.getByTestId("error").first();
      await error.waitFor({ timeout });
      const text = await error.innerText();
      assert.match(text, /could not reach/);
      assert.match(text, /MINIZON_CORS_ORIGINS/);
      assert.equal(await page.locator('[data-testid^="product-"]').count(), 0, "no catalog without CORS");
      await shot(page, "07-cross-origin-refused");

      // The server itself refuses the preflight for that origin and allows
      // it for the allowed one.
      const preflight = (origin) =>
        fetch(`${urls.checkout}/minizon.checkout.v1.CheckoutService/AddToCart`, {
          method: "OPTIONS",
          headers: {
            Origin: origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "connect-protocol-version,content-type",
          },
        });
      assert.equal((await preflight(other)).headers.get("access-control-allow-origin"), null);
      assert.equal((await preflight(dev.base)).headers.get("access-control-allow-origin"), dev.base);
    });
  });
});
