/* The Django admin's read-only map of a service area. */
document.addEventListener("DOMContentLoaded", () => {
  "use strict";
  const basemap = document.getElementById("portal-basemap");
  for (const container of document.querySelectorAll(".admin-area-map")) {
    const geometry = JSON.parse(document.getElementById(container.dataset.geometry).textContent);
    const map = L.map(container, { worldCopyJump: true });
    PortalBasemap.add(map, JSON.parse(basemap.textContent));
    const area = L.geoJSON(geometry, { style: { color: "#1d4ed8", weight: 2, fillOpacity: 0.2 } }).addTo(map);
    map.fitBounds(area.getBounds(), { padding: [16, 16], maxZoom: 15 });
  }
});
