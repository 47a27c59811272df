// The payment countdown on orders awaiting payment: time left until pay_by,
// redrawn every second by one local timer. It is display only and asks the
// server nothing; the order's status (a cancellation when the window ran
// out) comes from its WatchOrder stream.
import { clock } from "./format.js";

const deadlines = new Map<HTMLElement, number>();
let timer: ReturnType<typeof setInterval> | undefined;

/**
 * showCountdown makes el count down to payBy, or, without payBy, hides it.
 * An element taken out of the page is forgotten at the next tick.
 */
export function showCountdown(el: HTMLElement, payBy: Date | undefined): void {
  if (!payBy) {
    deadlines.delete(el);
    el.hidden = true;
    el.textContent = "";
    delete el.dataset.secondsLeft;
    return;
  }
  deadlines.set(el, payBy.getTime());
  el.hidden = false;
  paint(el, payBy.getTime());
  timer ??= setInterval(tick, 1000);
}

function tick(): void {
  for (const [el, t] of deadlines) {
    if (el.isConnected) paint(el, t);
    else deadlines.delete(el);
  }
  if (deadlines.size === 0) {
    clearInterval(timer);
    timer = undefined;
  }
}

function paint(el: HTMLElement, payBy: number): void {
  const left = payBy - Date.now();
  const seconds = Math.max(0, Math.ceil(left / 1000));
  el.dataset.secondsLeft = String(seconds);
  el.textContent = seconds > 0 ? `Pay within ${clock(left)}` : "Payment window over: LOMS cancels the order shortly";
  el.classList.toggle("late", seconds === 0);
}
