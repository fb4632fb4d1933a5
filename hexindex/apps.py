from django.apps import AppConfig


class HexindexConfig(AppConfig):
    name = "hexindex"
    verbose_name = "Hexagon index"

    def ready(self):
        # The tasks registered in every process, not only the worker: hexindex.queue sends them by name, and in
        # eager mode (tests) runs them in-process.
        from hexindex import tasks  # noqa: F401
