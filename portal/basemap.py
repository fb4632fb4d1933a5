from django.conf import settings
from django.templatetags.static import static

# Natural Earth's 1:50m countries (the world-atlas npm package): drawn under the tiles, and alone when tiles
# cannot load, so a map is readable with no internet.
OUTLINES = "vendor/world-atlas/countries-50m.json"


def basemap_config() -> dict:
    """What portal/static/portal/basemap.js needs to draw the base map."""
    return {
        "tileUrl": settings.PORTAL_TILE_URL,
        "attribution": settings.PORTAL_TILE_ATTRIBUTION,
        "outlines": static(OUTLINES),
    }


MAP_CSS = ("vendor/leaflet/leaflet.css", "portal/portal-map.css")
# The libraries a page with a map loads as classic scripts (they define the globals `L` and `topojson`); the page's
# own module then imports portal/basemap.js.
MAP_JS = ("vendor/leaflet/leaflet.js", "vendor/topojson-client/topojson-client.min.js")
