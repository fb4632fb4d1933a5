/* The base map of the portal and of the admin's area maps: raster tiles when a tile URL is configured, over
   country outlines that ship with the page (Natural Earth via world-atlas), so the map stays readable offline.
   Uses the globals of the classic scripts loaded before it: Leaflet's `L` and topojson-client's `topojson`.

   Exports: addBasemap(map, config), with config as portal/basemap.py's basemap_config() gives it. */

const OUTLINE_STYLE = { color: "#8a8f98", weight: 1, fillColor: "#f3f1ea", fillOpacity: 1 };

export function addBasemap(map, config) {
  // Below the tile pane (z-index 200): tiles that load cover the outlines, tiles that fail leave them visible.
  const pane = map.createPane("outlines");
  pane.style.zIndex = 150;
  pane.style.pointerEvents = "none";
  const outlines = L.geoJSON(null, {
    pane: "outlines",
    style: OUTLINE_STYLE,
    interactive: false,
    pmIgnore: true,
    attribution: "Natural Earth",
  }).addTo(map);
  fetch(config.outlines)
    .then((response) => response.json())
    .then((topology) => outlines.addData(topojson.feature(topology, topology.objects.countries)));
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.attribution, maxZoom: 19, pmIgnore: true }).addTo(map);
  }
  map.getContainer().classList.add("basemap");
}
