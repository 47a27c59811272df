// The errors panel at the top of the page: the last five failures, newest
// first, each with the action that failed and a button to dismiss it, and
// notices (things to know that are not errors) in the same place.
import type { ShownError } from "./api.js";
import { h, mount } from "./dom.js";

interface Failure extends ShownError {
  id: number;
  /** What the page was doing, e.g. "Pay order 12". */
  action: string;
  /** Not an error: something to know, such as an order that failed. */
  notice?: boolean;
}

export class Failures {
  readonly root = h("section", { class: "failures", "data-testid": "errors", "aria-live": "polite" });
  private shown: Failure[] = [];
  private nextId = 1;

  /** fail shows that action failed with e, or, as a notice, something to know. */
  fail(action: string, e: ShownError, notice = false): void {
    this.shown.unshift({ ...e, action, notice, id: this.nextId++ });
    this.shown.length = Math.min(this.shown.length, 5);
    this.render();
  }

  /** invalid reports a check the page made itself: nothing was sent. */
  invalid(action: string, message: string): void {
    this.fail(action, { code: "", message, hint: "Checked in the page; nothing was sent." });
  }

  /** clear dismisses everything shown. */
  clear(): void {
    this.shown = [];
    this.render();
  }

  render(): void {
    mount(
      this.root,
      this.shown.map((f) =>
        h(
          "div",
          {
            class: f.notice ? "failure notice" : "failure",
            "data-testid": f.notice ? "notice" : "error",
            "data-code": f.code,
          },
          f.code && h("span", { class: "code" }, f.code),
          h(
            "div",
            { class: "failure-text" },
            h("strong", {}, f.action),
            h("span", { "data-testid": "error-message" }, f.message),
            f.hint && h("small", {}, f.hint),
          ),
          h(
            "button",
            {
              type: "button",
              class: "close",
              "aria-label": "Dismiss",
              onclick: () => {
                this.shown = this.shown.filter((x) => x.id !== f.id);
                this.render();
              },
            },
            "×",
          ),
        ),
      ),
    );
  }
}
