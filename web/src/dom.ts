// A few lines of DOM building instead of a framework: the page has five
// panels that re-render from plain state, which needs no virtual DOM.

export type Child = Node | string | number | bigint | null | undefined | false | Child[];

type Handler = (ev: Event) => void;

export interface Props {
  [key: string]: string | number | boolean | Handler | undefined;
}

/**
 * h creates an element. Props named on<event> add listeners; value, checked
 * and disabled are set as properties; the rest are attributes, and false or
 * undefined leaves one out.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") {
      el.addEventListener(key.slice(2), v);
    } else if (key === "style") {
      // Through the CSSOM: the page's Content-Security-Policy refuses
      // style attributes.
      el.style.cssText = String(v);
    } else if (key === "value" || key === "checked" || key === "disabled") {
      (el as unknown as Record<string, unknown>)[key] = v;
    } else {
      el.setAttribute(key, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** mount replaces what el shows. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/**
 * keepFocus re-renders container and gives the focus back to the element
 * with the same test id, so keyboard users stay where they were.
 */
export function keepFocus(container: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  const id = active instanceof HTMLElement && container.contains(active) ? active.dataset.testid : undefined;
  render();
  if (id) container.querySelector<HTMLElement>(`[data-testid="${CSS.escape(id)}"]`)?.focus();
}
