/**
 * The one way screens talk to the server: `api.get/post/patch/delete` on paths under /api/v1/.
 * Session cookie auth (Django login); unsafe methods send the CSRF token from the `csrftoken` cookie.
 * Errors come back as `ApiError` with the server's `{"detail", "code"}` body, status and extra fields.
 */

export const API_ROOT = "/api/v1";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: Record<string, unknown>;

  constructor(status: number, body: Record<string, unknown>) {
    super(ApiError.messageOf(status, body));
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.code = typeof body.code === "string" ? body.code : `http_${status}`;
  }

  /** The readable message of an error body: `detail`, or DRF's field errors joined as "field: message". */
  static messageOf(status: number, body: Record<string, unknown>): string {
    if (typeof body.detail === "string") return body.detail;
    const parts: string[] = [];
    for (const [field, value] of Object.entries(body)) {
      if (field === "code") continue;
      const text = Array.isArray(value) ? value.join(" ") : typeof value === "string" ? value : JSON.stringify(value);
      parts.push(`${field}: ${text}`);
    }
    return parts.length ? parts.join("; ") : `HTTP ${status}`;
  }

  get isConflict(): boolean {
    return this.status === 409;
  }
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export function readCookie(cookies: string, name: string): string | null {
  for (const part of cookies.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

export interface ClientOptions {
  fetch?: Fetch;
  cookies?: () => string;
  root?: string;
  /** Called on 401/403-not-authenticated so the app can send the user to sign in. */
  onUnauthenticated?: () => void;
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export class ApiClient {
  private readonly fetchFn: Fetch;
  private readonly cookies: () => string;
  private readonly root: string;
  private readonly onUnauthenticated?: () => void;

  constructor(options: ClientOptions = {}) {
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.cookies = options.cookies ?? (() => (typeof document === "undefined" ? "" : document.cookie));
    this.root = options.root ?? API_ROOT;
    this.onUnauthenticated = options.onUnauthenticated;
  }

  url(path: string): string {
    if (path.startsWith("/api/") || path.startsWith("/dicomweb/")) return path;
    return `${this.root}${path.startsWith("/") ? path : `/${path}`}`;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) {
      const token = readCookie(this.cookies(), "csrftoken");
      if (token) headers["X-CSRFToken"] = token;
    }
    const response = await this.fetchFn(this.url(path), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { detail: text.slice(0, 500) };
      }
    }
    if (!response.ok) {
      const errorBody = (parsed && typeof parsed === "object" ? parsed : { detail: String(parsed ?? "") }) as Record<
        string,
        unknown
      >;
      const error = new ApiError(response.status, errorBody);
      if (response.status === 401 || (response.status === 403 && error.code === "not_authenticated")) {
        this.onUnauthenticated?.();
      }
      throw error;
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body ?? {});
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }
}

/** DRF list endpoints may paginate ({results: [...]}) or not (a plain list): both become a list. */
export function listOf<T>(body: T[] | { results: T[] }): T[] {
  return Array.isArray(body) ? body : body.results;
}

export function signInUrl(): string {
  const next = typeof window === "undefined" ? "/" : window.location.pathname + window.location.search;
  return `/accounts/login/?next=${encodeURIComponent(next)}`;
}

export const api = new ApiClient({
  onUnauthenticated: () => {
    if (typeof window !== "undefined") window.location.assign(signInUrl());
  },
});
