/* Shapes between GeoJSON and Leaflet. Leaflet works in [lat, lng], GeoJSON in [lng, lat]; an area is always handled
   as parts (a MultiPolygon), each a list of rings: the outer ring first, then its holes.

   Exports: toLatLngs(geometry), geometryOf(layer), partsOf(layer), insideRing(point, ring), describeShape(parts). */

// GeoJSON Polygon/MultiPolygon -> Leaflet's nested rings of LatLng (without GeoJSON's closing repeat), as parts.
export function toLatLngs(geometry) {
  const parts = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  return parts.map((rings) => rings.map((ring) => ring.slice(0, -1).map(([lng, lat]) => L.latLng(lat, lng))));
}

// Full precision: Leaflet rounds to 6 decimals by default, which would move every vertex of an edited area.
export function geometryOf(layer) {
  return layer.toGeoJSON(false).geometry;
}

export function partsOf(layer) {
  const latlngs = layer.getLatLngs();
  return L.LineUtil.isFlat(latlngs[0]) ? [latlngs] : latlngs;
}

// Whether a point ({lat, lng}) lies inside a ring of them (even-odd rule).
export function insideRing(point, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [a, b] = [ring[i], ring[j]];
    if (a.lat > point.lat !== b.lat > point.lat) {
      const lng = ((b.lng - a.lng) * (point.lat - a.lat)) / (b.lat - a.lat) + a.lng;
      if (point.lng < lng) inside = !inside;
    }
  }
  return inside;
}

// "2 parts, 1 hole, 12 corners"
export function describeShape(parts) {
  const holes = parts.reduce((count, rings) => count + rings.length - 1, 0);
  const corners = parts.flat().reduce((count, ring) => count + ring.length, 0);
  return (
    `${parts.length} ${parts.length === 1 ? "part" : "parts"}, ${holes} ${holes === 1 ? "hole" : "holes"}, ` +
    `${corners} corners`
  );
}
