// What every panel shares: where the page sends its RPCs, which user it
// shops as, and the user actions in flight. Main makes the one Session and
// hands it to each panel.
import { describe, newAPI, type API } from "./api.js";
import { h, type Child } from "./dom.js";
import type { Failures } from "./failures.js";
import type { Settings } from "./settings.js";

export interface SessionOptions {
  settings: Settings;
  user: bigint;
  /** failures shows what an action's failure was. */
  failures: Failures;
  /** busyChanged is called after the buttons of the actions in flight are updated. */
  busyChanged(): void;
}

export class Session {
  /** settings are where the page sends its RPCs; change them with connect. */
  settings: Settings;
  /** api calls the services at settings. */
  api: API;
  /** user is the user the page shops as. */
  user: bigint;
  /** busy holds the keys of the actions in flight. */
  readonly busy = new Set<string>();
  // gen counts connection changes: answers from an older API are dropped.
  private gen = 0;

  constructor(private readonly opt: SessionOptions) {
    this.settings = opt.settings;
    this.api = newAPI(opt.settings);
    this.user = opt.user;
  }

  /**
   * current returns a check that the connection is still the one it is
   * now: after a change, answers to the calls made before are stale.
   */
  current(): () => boolean {
    const g = this.gen;
    return () => g === this.gen;
  }

  /** connect sends the page's RPCs to the services next names from now on. */
  connect(next: Settings): void {
    this.gen++;
    this.settings = next;
    this.api = newAPI(next);
  }

  /**
   * run performs one user action against the service at baseUrl: the buttons
   * marked with its key are disabled while it runs (so it cannot be sent
   * twice), and a failure is shown with its Connect code, never swallowed. fn
   * is told whether the connection is still the one it started on: after a
   * change, it must stop applying answers. run says whether the action
   * succeeded.
   */
  async run(key: string, action: string, baseUrl: string, fn: (live: () => boolean) => Promise<void>): Promise<boolean> {
    if (this.busy.has(key)) return false;
    const live = this.current();
    this.busy.add(key);
    this.refreshBusy();
    try {
      await fn(live);
      return live();
    } catch (err) {
      if (live()) this.opt.failures.fail(action, describe(err, baseUrl));
      return false;
    } finally {
      this.busy.delete(key);
      this.refreshBusy();
    }
  }

  /** button makes the button of an action: disabled while the action with key runs. */
  button(label: Child, key: string, onclick: () => void, extra: Record<string, string> = {}): HTMLButtonElement {
    return h("button", { type: "button", disabled: this.busy.has(key), "data-busy-key": key, onclick, ...extra }, label);
  }

  /** refreshBusy disables the buttons of actions in flight. */
  private refreshBusy(): void {
    for (const el of document.querySelectorAll<HTMLButtonElement>("button[data-busy-key]")) {
      const busy = this.busy.has(el.dataset.busyKey!);
      el.disabled = busy || el.dataset.blocked === "true";
      el.toggleAttribute("aria-busy", busy);
    }
    this.opt.busyChanged();
  }
}
