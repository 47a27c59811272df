// Where the page sends its RPCs. By default every service is on the page's
// own origin, as `minizon dev` serves it. The Connection panel points it at
// services run separately (they must allow this page's origin in
// MINIZON_CORS_ORIGINS) and saves that in the browser. Query parameters
// (?checkout=, ?loms=, ?product=, ?token=) do the same for this tab only, so
// a link cannot silently redirect every later visit, and its token, to
// another host.

export interface Settings {
  checkout: string;
  loms: string;
  product: string;
  /** ProductService token; `minizon dev` accepts this one. */
  token: string;
}

const keys = ["checkout", "loms", "product", "token"] as const;
const urlKeys = ["checkout", "loms", "product"] as const;
const storageKey = "minizon.settings";

export const devToken = "testtoken";

export function defaultSettings(origin: string): Settings {
  return { checkout: origin, loms: origin, product: origin, token: devToken };
}

/**
 * loadSettings merges, by precedence, the query string, what this tab was
 * given before, what the Connection panel saved, and the defaults. It
 * returns the settings, what was wrong with the query string, and whether
 * it had any settings at all.
 */
export function loadSettings(
  location: Location,
  saved: Storage,
  tab: Storage,
): { settings: Settings; problems: string[]; fromQuery: boolean } {
  const settings = defaultSettings(location.origin);
  Object.assign(settings, read(saved), read(tab));
  const query = new URLSearchParams(location.search);
  const fromQuery: Partial<Settings> = {};
  const problems: string[] = [];
  let present = false;
  for (const key of keys) {
    const v = query.get(key)?.trim();
    if (v === undefined) continue;
    present = true;
    const problem = key === "token" ? "" : checkURL(v);
    if (problem) problems.push(`?${key}: ${problem}`);
    else fromQuery[key] = key === "token" ? v : normalize(v);
  }
  if (Object.keys(fromQuery).length > 0) {
    Object.assign(settings, fromQuery);
    tab.setItem(storageKey, JSON.stringify(settings));
  }
  return { settings, problems, fromQuery: present };
}

/** saveSettings keeps settings for later visits, replacing the tab's. */
export function saveSettings(saved: Storage, tab: Storage, settings: Settings): void {
  saved.setItem(storageKey, JSON.stringify(settings));
  tab.removeItem(storageKey);
}

/** checkURL returns why s is not a base URL the page can call, or "". */
export function checkURL(s: string): string {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `${JSON.stringify(s)} is not an address such as http://127.0.0.1:8080`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `${s} is not an http(s) address`;
  if (u.search || u.hash || u.username || u.password) return `${s}: give only scheme, host, port and path`;
  return "";
}

/** checkSettings returns what is wrong with each address, if anything. */
export function checkSettings(s: Settings): string[] {
  return urlKeys.flatMap((key) => {
    const problem = checkURL(s[key]);
    return problem ? [`${key}: ${problem}`] : [];
  });
}

/** normalize drops a trailing slash, so that origins compare equal. */
export function normalize(url: string): string {
  return url.replace(/\/+$/, "");
}

function read(storage: Storage): Partial<Settings> {
  try {
    const v = JSON.parse(storage.getItem(storageKey) ?? "{}") as Record<string, unknown>;
    const out: Partial<Settings> = {};
    for (const key of keys) {
      const x = v[key];
      if (typeof x === "string" && (key === "token" || !checkURL(x))) out[key] = x;
    }
    return out;
  } catch {
    // A corrupt entry is replaced by the next save.
    return {};
  }
}
