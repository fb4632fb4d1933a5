/* The user's areas: loading them (simplified outlines), keeping state.areas and the map in step, the table of the
   Areas tab with its provider filter, the lookup's highlight, and watching each area's index status while the
   worker builds it (pending -> ready or failed) without a reload.

   Exports: loadAreas(), putArea(feature), removeArea(id), renderAreas(), highlight(ids), watchIndex(id),
   initAreaList({ onOpen(id) }). */

import { messagesOf } from "./errors.js";
import { drawArea, eraseArea, restyleAreas } from "./map.js";
import { api, byId, formatPrice, h, say, urls } from "./page.js";
import { state } from "./state.js";

// Lists carry simplified outlines (a thousandth of each area's size: the same on screen, far lighter); the
// editor loads the full geometry of the one area it opens.
const LIST_PAGE = "geometry=simplified&page_size=500";
const POLL_FIRST_MS = 1000;
const POLL_MAX_MS = 5000;

const polling = new Set(); // ids of the areas whose index status is being watched

export async function loadAreas() {
  for (const id of [...state.areas.keys()]) removeArea(id);
  for (const provider of state.providers.values()) {
    const page = await api.allPages(`${urls.areas}?provider=${provider.id}&${LIST_PAGE}`);
    if (!page.ok) say(`Areas of ${provider.name} could not be loaded: ${messagesOf(page.result.data)}`, "error");
    for (const feature of page.items) putArea(feature);
  }
  renderAreas();
  for (const [id, feature] of state.areas) {
    if (feature.properties.index.status === "pending") watchIndex(id);
  }
}

export function putArea(feature) {
  state.areas.set(feature.id, feature);
  drawArea(feature);
}

export function removeArea(id) {
  eraseArea(id);
  state.areas.delete(id);
  polling.delete(id);
  state.highlighted.delete(id);
}

// The areas a lookup found, on the map and in the table.
export function highlight(ids) {
  state.highlighted = new Set(ids);
  restyleAreas();
  renderAreas();
}

function statusBadge(index) {
  const title =
    index.status === "failed"
      ? index.error
      : index.status === "pending"
        ? "Being indexed: lookups already find it."
        : `Indexed ${index.indexed_at || ""}`;
  return h("span", { class: `badge status-${index.status}`, title }, index.status);
}

export function renderAreas() {
  const filter = byId("area-filter").value;
  const rows = [...state.areas.values()]
    .filter((feature) => !filter || feature.properties.provider === Number(filter))
    .map((feature) => {
      const provider = state.providers.get(feature.properties.provider);
      const editing = state.editor && state.editor.areaId === feature.id;
      const classes = [editing ? "editing" : "", state.highlighted.has(feature.id) ? "highlighted" : ""];
      return h(
        "tr",
        { "data-area": feature.id, class: classes.join(" ").trim() || null },
        h(
          "td",
          {},
          h("button", { type: "button", class: "link-button", "data-open": feature.id }, feature.properties.name),
          provider ? h("div", { class: "sub" }, provider.name) : null,
        ),
        h("td", { class: "num" }, formatPrice(feature.properties)),
        h("td", {}, statusBadge(feature.properties.index)),
      );
    });
  byId("area-rows").replaceChildren(...rows);
  byId("areas-empty").hidden = rows.length > 0;
}

// The index builds an area in the background: its status goes from pending to ready (or failed) without a reload.
export function watchIndex(id) {
  if (polling.has(id)) return;
  polling.add(id);
  let delay = POLL_FIRST_MS;
  const poll = async () => {
    if (!polling.has(id) || !state.areas.has(id)) return;
    const result = await api.request("GET", `${urls.areas}${id}/?geometry=none`);
    const feature = state.areas.get(id);
    if (!result.ok || !feature || !polling.has(id)) {
      polling.delete(id);
      return;
    }
    feature.properties.index = result.data.properties.index;
    renderAreas();
    if (feature.properties.index.status === "pending") {
      delay = Math.min(delay * 1.5, POLL_MAX_MS);
      setTimeout(poll, delay);
    } else {
      polling.delete(id);
      if (feature.properties.index.status === "failed") {
        say(`“${feature.properties.name}” could not be indexed: ${feature.properties.index.error}`, "error");
      }
    }
  };
  setTimeout(poll, delay);
}

// onOpen(id): a click on an area's name (the editor opens it).
export function initAreaList({ onOpen }) {
  byId("area-filter").addEventListener("change", renderAreas);
  byId("area-rows").addEventListener("click", (event) => {
    const open = event.target.closest("[data-open]");
    if (open) onOpen(Number(open.dataset.open));
  });
}
