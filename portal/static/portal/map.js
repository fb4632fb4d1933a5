/* The map: Leaflet in #map over the base map (basemap.js), and the user's areas drawn on it, one polygon each,
   dashed while their provider is not approved, highlighted when the last lookup found them. The area open in the
   editor is left out: draw.js shows its full, editable shape instead. Importing this module creates the map.

   Exports: map, drawArea(feature), eraseArea(id), restyleAreas(), hideArea(id), showArea(id), fitToAreas(),
   fitToProviderAreas(providerId). */

import { addBasemap } from "./basemap.js";
import { toLatLngs } from "./geometry.js";
import { config, formatPrice, h } from "./page.js";
import { state } from "./state.js";

const AREA_STYLE = { color: "#1d4ed8", weight: 2, fillOpacity: 0.18 };
const UNAPPROVED_STYLE = { dashArray: "6 4" };
const HIGHLIGHT_STYLE = { color: "#c2410c", weight: 4, fillOpacity: 0.4 };

export const map = L.map("map", { worldCopyJump: true, minZoom: 2 }).setView([30, 0], 2);
addBasemap(map, config.basemap);
// For the browser tests and the developer console: where a coordinate is on screen, and back.
window.portalMap = map;

const areaGroup = L.featureGroup().addTo(map); // the areas shown (all but the one in the editor)
const layers = new Map(); // area id -> its polygon, shown or not

function styleFor(id) {
  const feature = state.areas.get(id);
  const provider = feature && state.providers.get(feature.properties.provider);
  const base = { ...AREA_STYLE, dashArray: null, ...(provider && !provider.approved ? UNAPPROVED_STYLE : {}) };
  return state.highlighted.has(id) ? { ...base, ...HIGHLIGHT_STYLE } : base;
}

// Draws (or redraws) an area of state.areas: a feature without geometry is only erased.
export function drawArea(feature) {
  eraseArea(feature.id);
  if (!feature.geometry) return;
  const layer = L.polygon(toLatLngs(feature.geometry), { ...styleFor(feature.id), pmIgnore: true });
  layer.bindTooltip(
    () => {
      const properties = state.areas.get(feature.id).properties;
      return h("span", {}, h("strong", {}, properties.name), ` · ${formatPrice(properties)}`);
    },
    { sticky: true },
  );
  layers.set(feature.id, layer);
  if (!state.editor || state.editor.areaId !== feature.id) areaGroup.addLayer(layer);
}

export function eraseArea(id) {
  const layer = layers.get(id);
  if (layer) areaGroup.removeLayer(layer);
  layers.delete(id);
}

// After state.highlighted changed.
export function restyleAreas() {
  for (const [id, layer] of layers) layer.setStyle(styleFor(id));
}

// While an area is in the editor, and back.
export function hideArea(id) {
  const layer = layers.get(id);
  if (layer) areaGroup.removeLayer(layer);
}

export function showArea(id) {
  const layer = layers.get(id);
  if (layer) areaGroup.addLayer(layer);
}

export function fitToAreas() {
  const bounds = areaGroup.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 13 });
}

export function fitToProviderAreas(providerId) {
  const bounds = L.latLngBounds([]);
  for (const [id, layer] of layers) {
    if (state.areas.get(id).properties.provider === providerId) bounds.extend(layer.getBounds());
  }
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 13 });
}
