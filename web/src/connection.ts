// The page's top bar: the user the page shops as, and the Connection menu,
// which says where the page sends its RPCs (settings.ts) and changes it.
// What a switch of user or connection does to the panels is main's.
import { h, mount } from "./dom.js";
import type { Failures } from "./failures.js";
import { parseId } from "./format.js";
import type { Session } from "./session.js";
import { checkSettings, defaultSettings, normalize, type Settings } from "./settings.js";

export interface ConnectionDeps {
  session: Session;
  failures: Failures;
  /** switchUser makes the page shop as user. */
  switchUser(user: bigint): void;
  /** connect sends the page's RPCs to the services next names, and saves it. */
  connect(next: Settings): void;
}

export class Connection {
  readonly root = h("header", { class: "topbar" });

  constructor(private readonly deps: ConnectionDeps) {}

  render(): void {
    const userInput = h("input", {
      id: "user",
      type: "text",
      inputmode: "numeric",
      value: String(this.deps.session.user),
      "data-testid": "user-input",
      "aria-label": "User id",
    });
    const s = this.deps.session.settings;
    const field = (key: keyof Settings, label: string) =>
      h("label", {}, label, h("input", { name: key, value: s[key], "data-testid": `setting-${key}`, spellcheck: "false" }));
    const sameOrigin = [s.checkout, s.loms, s.product].every((u) => normalize(u) === location.origin);
    mount(
      this.root,
      h("a", { class: "brand", href: "./" }, h("span", { class: "logo" }, "m"), "miniZON"),
      h(
        "form",
        {
          class: "user",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            this.switchUser(userInput.value);
          },
        },
        h("label", { for: "user" }, "Shopping as user"),
        userInput,
        h("button", { type: "submit", class: "ghost", "data-testid": "user-switch" }, "Switch"),
      ),
      h(
        "details",
        { class: "settings" },
        h("summary", { "data-testid": "settings" }, sameOrigin ? "Connection: this server" : "Connection: custom"),
        h(
          "form",
          {
            class: "settings-form",
            onsubmit: (ev: Event) => {
              ev.preventDefault();
              const data = new FormData(ev.target as HTMLFormElement);
              const next = { ...s };
              for (const key of ["checkout", "loms", "product", "token"] as const) {
                const v = String(data.get(key) ?? "").trim();
                next[key] = key === "token" ? v : normalize(v);
              }
              this.connect(next);
            },
          },
          h("p", { class: "muted small" }, "Services on other origins must list this page's origin in MINIZON_CORS_ORIGINS."),
          field("checkout", "Checkout"),
          field("loms", "LOMS"),
          field("product", "ProductService"),
          field("token", "Product token"),
          h(
            "div",
            { class: "row" },
            h("button", { type: "submit", "data-testid": "settings-save" }, "Save"),
            h(
              "button",
              {
                type: "button",
                class: "ghost",
                "data-testid": "settings-reset",
                onclick: () => this.connect(defaultSettings(location.origin)),
              },
              "Same origin",
            ),
          ),
        ),
      ),
    );
  }

  private switchUser(text: string): void {
    const user = parseId(text);
    if (user === null) {
      this.deps.failures.invalid("Switch user", "user: enter a whole number from 1 to 9223372036854775807");
      return;
    }
    this.deps.switchUser(user);
  }

  private connect(next: Settings): void {
    const problems = checkSettings(next);
    if (problems.length > 0) {
      this.deps.failures.invalid("Save the connection", problems.join("; "));
      return;
    }
    this.deps.connect(next);
  }
}
