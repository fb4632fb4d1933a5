from django.apps import AppConfig


class AreasConfig(AppConfig):
    name = "areas"

    def ready(self):
        from areas import schema  # noqa: F401  (registers the OpenAPI extension)
