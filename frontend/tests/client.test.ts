import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, listOf, query, readCookie } from "../src/api/client";

interface Call {
  url: string;
  init: RequestInit;
}

function fakeServer(status: number, body: unknown): { calls: Call[]; fetch: (url: string, init?: RequestInit) => Promise<Response> } {
  const calls: Call[] = [];
  return {
    calls,
    fetch: async (url, init = {}) => {
      calls.push({ url, init });
      const text = body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body);
      return new Response(text, { status, headers: { "Content-Type": "application/json" } });
    },
  };
}

describe("ApiClient", () => {
  it("prefixes paths with /api/v1 and parses JSON", async () => {
    const server = fakeServer(200, [{ slug: "p" }]);
    const client = new ApiClient({ fetch: server.fetch, cookies: () => "" });
    const body = await client.get<{ slug: string }[]>("/projects/");
    expect(body).toEqual([{ slug: "p" }]);
    expect(server.calls[0].url).toBe("/api/v1/projects/");
    expect(server.calls[0].init.method).toBe("GET");
    expect((server.calls[0].init.headers as Record<string, string>)["X-CSRFToken"]).toBeUndefined();
  });

  it("sends the CSRF cookie and a JSON body on writes", async () => {
    const server = fakeServer(201, { number: 1 });
    const client = new ApiClient({ fetch: server.fetch, cookies: () => "sessionid=abc; csrftoken=tok%3D1" });
    await client.post("/cases/3/revisions/", { role: "first_reader" });
    const headers = server.calls[0].init.headers as Record<string, string>;
    expect(headers["X-CSRFToken"]).toBe("tok=1");
    expect(headers["Content-Type"]).toBe("application/json");
    expect(JSON.parse(server.calls[0].init.body as string)).toEqual({ role: "first_reader" });
  });

  it("turns 409 into an ApiError carrying detail, code and the body's extra fields", async () => {
    const server = fakeServer(409, { detail: "Revision 3 is current, not 2", code: "stale_revision", current_revision: 3 });
    const client = new ApiClient({ fetch: server.fetch, cookies: () => "" });
    const error = await client.post("/cases/1/revisions/", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    const apiError = error as ApiError;
    expect(apiError.status).toBe(409);
    expect(apiError.isConflict).toBe(true);
    expect(apiError.code).toBe("stale_revision");
    expect(apiError.message).toBe("Revision 3 is current, not 2");
    expect(apiError.body.current_revision).toBe(3);
  });

  it("joins DRF field errors into one message", async () => {
    const server = fakeServer(400, { role: ['"x" is not a valid choice.'], base_revision: ["This field is required."] });
    const client = new ApiClient({ fetch: server.fetch, cookies: () => "" });
    const error = (await client.post("/cases/1/revisions/", {}).catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe("http_400");
    expect(error.message).toBe('role: "x" is not a valid choice.; base_revision: This field is required.');
  });

  it("returns undefined on 204 and calls onUnauthenticated on 401 or 403 not_authenticated", async () => {
    let signIn = 0;
    const empty = fakeServer(204, undefined);
    expect(await new ApiClient({ fetch: empty.fetch, cookies: () => "" }).post("/x/")).toBeUndefined();
    const denied = fakeServer(403, { detail: "Authentication credentials were not provided.", code: "not_authenticated" });
    const client = new ApiClient({ fetch: denied.fetch, cookies: () => "", onUnauthenticated: () => signIn++ });
    await expect(client.get("/me/")).rejects.toThrow("Authentication credentials were not provided.");
    expect(signIn).toBe(1);
    const forbidden = fakeServer(403, { detail: "Only a manager", code: "permission_denied" });
    const client2 = new ApiClient({ fetch: forbidden.fetch, cookies: () => "", onUnauthenticated: () => signIn++ });
    await expect(client2.get("/x/")).rejects.toThrow("Only a manager");
    expect(signIn).toBe(1);
  });

  it("keeps absolute API and DICOMweb paths, builds query strings and unwraps pages", () => {
    const client = new ApiClient({ fetch: fakeServer(200, {}).fetch, cookies: () => "" });
    expect(client.url("/dicomweb/studies")).toBe("/dicomweb/studies");
    expect(client.url("jobs/")).toBe("/api/v1/jobs/");
    expect(query({ role: "first_reader", page: 2, empty: "", none: undefined })).toBe("?role=first_reader&page=2");
    expect(listOf({ results: [1, 2] })).toEqual([1, 2]);
    expect(listOf([3])).toEqual([3]);
    expect(readCookie("a=1; b=2", "b")).toBe("2");
    expect(readCookie("a=1", "b")).toBeNull();
  });
});
