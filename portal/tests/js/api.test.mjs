// The portal's API client (portal/static/portal/api.js), against a stand-in for fetch: `node --test portal/tests/js/`.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { UNREACHABLE, createApi } from "../../static/portal/api.js";

const api = createApi({ csrfToken: "the-token", loginUrl: "/portal/login/" });
const sent = [];
const visited = [];

function answer(status, body, headers = {}) {
  globalThis.fetch = async (url, init) => {
    sent.push({ url, ...init });
    const text = typeof body === "string" ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status, statusText: "Status", headers });
  };
}

globalThis.window = { location: { pathname: "/portal/", assign: (url) => visited.push(url) } };

afterEach(() => {
  sent.length = 0;
  visited.length = 0;
});

test("reads send no CSRF header; writes send it, their JSON body and If-Match", async () => {
  answer(200, { id: 1 }, { ETag: '"v1"' });
  const read = await api.request("GET", "/api/v1/service-areas/1/");
  assert.deepEqual(read, { ok: true, status: 200, data: { id: 1 }, etag: '"v1"', retryAfter: 0 });
  assert.equal(sent[0].headers["X-CSRFToken"], undefined);
  assert.equal(sent[0].body, undefined);
  assert.equal(sent[0].credentials, "same-origin");

  await api.request("PATCH", "/api/v1/service-areas/1/", { body: { properties: { price: "9" } }, ifMatch: '"v1"' });
  assert.deepEqual(sent[1].headers, {
    Accept: "application/json",
    "Content-Type": "application/json",
    "X-CSRFToken": "the-token",
    "If-Match": '"v1"',
  });
  assert.equal(sent[1].body, '{"properties":{"price":"9"}}');
});

test("a refusal comes back with the API's error body and the wait it asks for", async () => {
  answer(429, { detail: "Slow down." }, { "Retry-After": "7" });
  const result = await api.request("POST", "/api/v1/service-areas/", { body: {} });
  assert.equal(result.ok, false);
  assert.equal(result.status, 429);
  assert.deepEqual(result.data, { detail: "Slow down." });
  assert.equal(result.retryAfter, 7);
});

test("an answer that is not JSON, or no answer at all, still comes back as words", async () => {
  answer(502, "<html>Bad gateway</html>");
  assert.deepEqual((await api.request("GET", "/api/v1/providers/")).data, { detail: "The server answered 502 Status." });
  globalThis.fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  assert.deepEqual(await api.request("GET", "/api/v1/providers/"), { ok: false, status: 0, data: { detail: UNREACHABLE } });
});

test("a deleted area answers 204 with no body", async () => {
  answer(204, null);
  const result = await api.request("DELETE", "/api/v1/service-areas/1/", { ifMatch: '"v2"' });
  assert.equal(result.ok, true);
  assert.equal(result.data, null);
});

test("when the session has ended the browser goes to sign in, and back here after", async () => {
  answer(401, { detail: "Authentication credentials were not provided." });
  const result = await api.request("GET", "/api/v1/providers/");
  assert.equal(result.status, 401);
  assert.deepEqual(visited, ["/portal/login/?next=%2Fportal%2F"]);
});

test("every page is read, following next, until one is refused", async () => {
  const pages = {
    "/p?page=1": { results: [1, 2], next: "/p?page=2" },
    "/p?page=2": { features: [3], next: "/p?page=3" },
  };
  globalThis.fetch = async (url) =>
    pages[url] ? Response.json(pages[url]) : Response.json({ detail: "Too heavy." }, { status: 400 });
  const all = await api.allPages("/p?page=1");
  assert.equal(all.ok, false);
  assert.deepEqual(all.items, [1, 2, 3]);
  assert.equal(all.result.status, 400);
  pages["/p?page=2"].next = null;
  assert.deepEqual(await api.allPages("/p?page=1"), { ok: true, items: [1, 2, 3] });
});
