// Where the page sends its RPCs. By default every service is on the page's
// own origin, as `minizon dev` serves it; query parameters (?checkout=,
// ?loms=, ?product=, ?token=) or the Connection panel point it at services
// run separately, which must then allow this page's origin
// (MINIZON_CORS_ORIGINS).

export interface Settings {
  checkout: string;
  loms: string;
  product: string;
  /** ProductService token; `minizon dev` accepts this one. */
  token: string;
}

const storageKey = "minizon.settings";

export const devToken = "testtoken";

export function defaultSettings(origin: string): Settings {
  return { checkout: origin, loms: origin, product: origin, token: devToken };
}

/**
 * loadSettings merges, in order of precedence, the query string, what was
 * saved before, and the defaults. Query parameters are saved, so a reload
 * without them keeps the same services.
 */
export function loadSettings(location: Location, storage: Storage): Settings {
  const settings = defaultSettings(location.origin);
  try {
    const saved = JSON.parse(storage.getItem(storageKey) ?? "{}") as Partial<Settings>;
    Object.assign(settings, pick(saved));
  } catch {
    // A corrupt entry is replaced by the next save.
  }
  const query = new URLSearchParams(location.search);
  const fromQuery: Partial<Settings> = {};
  for (const key of ["checkout", "loms", "product", "token"] as const) {
    const v = query.get(key);
    if (v !== null) fromQuery[key] = v;
  }
  if (Object.keys(fromQuery).length > 0) {
    Object.assign(settings, fromQuery);
    saveSettings(storage, settings);
  }
  return settings;
}

export function saveSettings(storage: Storage, settings: Settings): void {
  storage.setItem(storageKey, JSON.stringify(settings));
}

/** checkURL returns why s is not a base URL the page can call, or "". */
export function checkURL(s: string): string {
  try {
    const u = new URL(s);
    if (u.protocol !== "http:" && u.protocol !== "https:") return `${s} is not an http(s) address`;
    return "";
  } catch {
    return `${s} is not an address such as http://127.0.0.1:8080`;
  }
}

function pick(v: Partial<Settings>): Partial<Settings> {
  const out: Partial<Settings> = {};
  for (const key of ["checkout", "loms", "product", "token"] as const) {
    if (typeof v[key] === "string") out[key] = v[key];
  }
  return out;
}
