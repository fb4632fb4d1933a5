/* Every request the portal makes to the API (/api/v1/ and the portal's own lookup).

   JSON in and out, with the session cookie; writes carry the CSRF header, versioned writes If-Match. A request
   never throws: it resolves to { ok, status, data, etag, retryAfter }, and when the API refused, `data` is its error
   body (or one made up here when the server could not be reached or did not answer JSON), which errors.js puts into
   words. A 401 means the session ended (signed out in another tab, or expired): the browser goes to sign in again.

   Exports: createApi({ csrfToken, loginUrl }) -> { request(method, url, { body, ifMatch }), allPages(url) }. */

export const UNREACHABLE = "The server could not be reached: check the connection and try again.";

export function createApi({ csrfToken, loginUrl }) {
  async function request(method, url, { body, ifMatch } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    if (ifMatch) headers["If-Match"] = ifMatch;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { ok: false, status: 0, data: { detail: UNREACHABLE } };
    }
    if (response.status === 401) {
      window.location.assign(`${loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (error) {
        data = { detail: `The server answered ${response.status} ${response.statusText}.` };
      }
    }
    return {
      ok: response.ok,
      status: response.status,
      data,
      etag: response.headers.get("ETag"),
      retryAfter: Number(response.headers.get("Retry-After")) || 0,
    };
  }

  // Follows `next` to the end: { ok: true, items } with the results (or features) of every page, or
  // { ok: false, result, items } with the refused request's result and the items read before it.
  async function allPages(url) {
    const items = [];
    while (url) {
      const result = await request("GET", url);
      if (!result.ok) return { ok: false, result, items };
      items.push(...(result.data.results || result.data.features || []));
      url = result.data.next;
    }
    return { ok: true, items };
  }

  return { request, allPages };
}
