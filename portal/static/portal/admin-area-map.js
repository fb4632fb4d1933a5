/* The Django admin's read-only map of a service area (portal/admin.py adds it to the area's change page, after
   Leaflet and topojson-client): each .admin-area-map draws the geometry in the JSON script its data-geometry names. */

import { addBasemap } from "./basemap.js";

for (const container of document.querySelectorAll(".admin-area-map")) {
  // Read here, not above: pages with no map (adding an area) have no #portal-basemap either.
  const basemap = JSON.parse(document.getElementById("portal-basemap").textContent);
  const geometry = JSON.parse(document.getElementById(container.dataset.geometry).textContent);
  const map = L.map(container, { worldCopyJump: true });
  addBasemap(map, basemap);
  const area = L.geoJSON(geometry, { style: { color: "#1d4ed8", weight: 2, fillOpacity: 0.2 } }).addTo(map);
  map.fitBounds(area.getBounds(), { padding: [16, 16], maxZoom: 15 });
}
