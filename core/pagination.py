from rest_framework import pagination
from rest_framework_gis.pagination import GeoJsonPagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class FeatureCollectionPagination(GeoJsonPagination):
    """Pages as GeoJSON FeatureCollections: `count`, `next` and `previous` are foreign members that map tools
    ignore, so a page pastes into geojson.io as it is."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_paginated_response_schema(self, schema):
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"]["type"]["example"] = "FeatureCollection"
        paginated["required"] = ["type", "count", "features"]
        return paginated
