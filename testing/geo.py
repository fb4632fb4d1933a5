"""GeoJSON builders for tests: positions are (lng, lat), as RFC 7946 has them."""


def square(lng: float, lat: float, half: float) -> dict:
    """GeoJSON Polygon: an axis-aligned square centred on (lng, lat)."""
    return polygon(
        [(lng - half, lat - half), (lng + half, lat - half), (lng + half, lat + half), (lng - half, lat + half)]
    )


def polygon(exterior, *holes) -> dict:
    """GeoJSON Polygon from (lng, lat) rings; rings are closed here."""

    def ring(points):
        points = [list(p) for p in points]
        return points if points[0] == points[-1] else [*points, points[0]]

    return {"type": "Polygon", "coordinates": [ring(exterior), *(ring(h) for h in holes)]}


def multipolygon(*polygons: dict) -> dict:
    return {"type": "MultiPolygon", "coordinates": [p["coordinates"] for p in polygons]}


def feature(geometry: dict | None = None, **properties) -> dict:
    body = {"type": "Feature", "properties": properties}
    if geometry is not None:
        body["geometry"] = geometry
    return body
