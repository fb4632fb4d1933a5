"""A read-only map of a service area for the Django admin: Leaflet and the portal's base map, served as static
files (Django's own map widgets load OpenLayers from a CDN)."""

import json

from django.template.loader import render_to_string

from portal.basemap import MAP_CSS, MAP_JS, basemap_config

ADMIN_MAP_CSS = MAP_CSS
ADMIN_MAP_JS = (*MAP_JS, "portal/admin-area-map.js")


def area_map_html(area) -> str:
    if area is None or area.pk is None or area.geometry is None:
        return ""
    return render_to_string(
        "portal/admin_area_map.html",
        {
            "geometry": json.loads(area.geometry.geojson),
            "geometry_id": f"area-geometry-{area.pk}",
            "basemap": basemap_config(),
            "vertex_count": area.vertex_count,
        },
    )
