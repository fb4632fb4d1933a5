from django.apps import AppConfig


class HexindexConfig(AppConfig):
    name = "hexindex"
    verbose_name = "Hexagon index"
