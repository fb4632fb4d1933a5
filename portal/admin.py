"""A read-only map of a service area in the Django admin: Leaflet and the portal's base map, served as static
files (Django's own map widgets load OpenLayers from a CDN). The portal adds it to the areas app's admin (it sits
above that app: areas knows nothing of maps)."""

import json

from django.contrib import admin
from django.forms import Script
from django.template.loader import render_to_string

from areas.admin import ServiceAreaAdmin
from areas.models import ServiceArea
from portal.basemap import MAP_CSS, MAP_JS, basemap_config

ADMIN_MAP_CSS = MAP_CSS
ADMIN_MAP_JS = (*MAP_JS, Script("portal/admin-area-map.js", type="module"))  # imports portal/basemap.js


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


class ServiceAreaWithMapAdmin(ServiceAreaAdmin):
    readonly_fields = ["area_map", *ServiceAreaAdmin.readonly_fields]

    class Media:
        css = {"all": ADMIN_MAP_CSS}
        js = ADMIN_MAP_JS

    @admin.display(description="Geometry")
    def area_map(self, area):
        return area_map_html(area)


admin.site.unregister(ServiceArea)
admin.site.register(ServiceArea, ServiceAreaWithMapAdmin)
