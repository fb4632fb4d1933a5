/* The Lookup tab: a click on the map asks the lookup what it answers there (the public one, or the portal's own
   with the user's unapproved providers included), marks the point, lists the areas found, cheapest first, and
   highlights the user's own among them on the map and in the Areas table.

   Exports: initLookup({ onOpen(id) }). */

import { highlight } from "./areas.js";
import { messagesOf } from "./errors.js";
import { map } from "./map.js";
import { api, byId, h, showTab, urls } from "./page.js";
import { state } from "./state.js";

const MARKER_STYLE = { radius: 6, color: "#111827", weight: 2, fillColor: "#facc15", fillOpacity: 1 };

let lookupPoint = null; // the point last asked about
let lookupMarker = null;

async function runLookup(point) {
  lookupPoint = point;
  const mine = byId("include-mine").checked;
  const lat = point.lat.toFixed(6);
  const lng = point.lng.toFixed(6);
  if (lookupMarker) map.removeLayer(lookupMarker);
  lookupMarker = L.circleMarker(point, { ...MARKER_STYLE, pmIgnore: true }).addTo(map);
  showTab("lookup");
  const output = byId("lookup-result");
  output.replaceChildren(h("p", {}, "Asking…"));
  const url = mine
    ? `${urls.lookupMine}?lat=${lat}&lng=${lng}&include_mine=true`
    : `${urls.lookup}?lat=${lat}&lng=${lng}`;
  const result = await api.request("GET", url);
  if (lookupPoint !== point) return; // a newer click answered meanwhile
  if (!result.ok) {
    output.replaceChildren(h("p", { class: "error" }, `The lookup failed: ${messagesOf(result.data)}`));
    return;
  }
  const found = result.data.results;
  const heading = h(
    "p",
    { class: "where" },
    `At ${lat}, ${lng} (latitude, longitude): `,
    found.length
      ? `${found.length} ${found.length === 1 ? "area" : "areas"}, cheapest first.`
      : `no area${mine ? "" : " in public lookups"}.`,
  );
  const items = found.map((item) => {
    const own = state.areas.has(item.id);
    const provider = state.providers.get(item.provider.id);
    return h(
      "li",
      {},
      h("strong", {}, item.name),
      ` — ${item.provider.name} · ${item.price} ${item.currency} `,
      own ? h("span", { class: "badge" }, "yours") : null,
      provider && !provider.approved ? h("span", { class: "badge warn" }, "not public yet") : null,
      own ? h("button", { type: "button", class: "link-button", "data-open": item.id }, "Edit") : null,
    );
  });
  const unapprovedAreas = [...state.areas.values()].some((feature) => {
    const provider = state.providers.get(feature.properties.provider);
    return provider && !provider.approved;
  });
  output.replaceChildren(
    ...[
      heading,
      items.length ? h("ol", { class: "lookup-results" }, items) : null,
      !mine && unapprovedAreas
        ? h(
            "p",
            { class: "hint" },
            "Areas of your unapproved providers are not in public lookups: tick the box above to include them.",
          )
        : null,
    ].filter(Boolean),
  );
  highlight(found.map((item) => item.id).filter((id) => state.areas.has(id)));
}

// onOpen(id): a click on Edit beside one of the user's own areas found (the editor opens it).
export function initLookup({ onOpen }) {
  map.on("click", (event) => {
    // Clicks while drawing or editing place and move corners; they are not questions.
    if (state.editor || map.pm.globalDrawModeEnabled()) return;
    runLookup(event.latlng.wrap());
  });
  byId("include-mine").addEventListener("change", () => {
    if (lookupPoint) runLookup(lookupPoint);
  });
  byId("lookup-result").addEventListener("click", (event) => {
    const open = event.target.closest("[data-open]");
    if (open) onOpen(Number(open.dataset.open));
  });
}
