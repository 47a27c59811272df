// What the browser tests do with the storefront page: wait for text, shop
// by clicks, read orders. Shared by the test files.
import assert from "node:assert/strict";
import { watchPage } from "./harness.mjs";

/** timeout bounds each wait for something the page must show. */
export const timeout = 15_000;

/** waitText waits until locator's text matches. */
export async function waitText(locator, text) {
  await locator.filter({ hasText: text }).first().waitFor({ timeout });
}

/**
 * withPage runs fn on a new page, then checks that the page never threw or
 * broke its Content-Security-Policy; it closes the page even if fn failed.
 */
export async function withPage(browser, fn) {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  try {
    await fn(page);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
}

/** waitCount waits until the cart shows exactly n units of sku. */
export async function waitCount(page, sku, n) {
  await waitText(page.getByTestId(`count-${sku}`), new RegExp(`^${n}$`));
}

/** firstProducts waits for the catalog and returns its first n skus. */
export async function firstProducts(page, n) {
  const cards = page.locator('[data-testid^="product-"]');
  await cards.nth(n - 1).waitFor({ timeout });
  const skus = [];
  for (let i = 0; i < n; i++) {
    skus.push(Number((await cards.nth(i).getAttribute("data-testid")).slice("product-".length)));
  }
  return skus;
}

/** switchUser makes the page shop as user, with an empty cart. */
export async function switchUser(page, user) {
  await page.getByTestId("user-input").fill(String(user));
  await page.getByTestId("user-switch").click();
  await waitText(page.getByTestId("cart"), `user ${user}`);
  await page.getByTestId("cart-empty").waitFor({ timeout });
}

/** newestOrder reads the id of the newest order card. */
export async function newestOrder(page) {
  const card = page.locator('[data-testid^="order-"]').first();
  await card.waitFor({ timeout });
  return (await card.getAttribute("data-testid")).slice("order-".length);
}

/** buyOne puts one unit of sku in the empty cart, purchases it and returns the order id. */
export async function buyOne(page, sku) {
  await page.getByTestId(`add-${sku}`).click();
  await waitCount(page, sku, 1);
  await page.getByTestId("purchase").click();
  // The cart empties after the new order's card is listed.
  await page.getByTestId("cart-empty").waitFor({ timeout });
  return newestOrder(page);
}

/** orderStatus waits until order id's card shows status (e.g. ORDER_STATUS_PAYED). */
export async function orderStatus(page, id, status, wait = timeout) {
  await page.locator(`[data-testid="order-${id}"] [data-testid="order-status"][data-status="${status}"]`).waitFor({ timeout: wait });
}
