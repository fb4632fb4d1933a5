"""Production's static files: the portal's ES modules import each other by their fingerprinted names, so a browser
never mixes a new module with an old one still cached under its plain name."""

import json
import re

from django.core.management import call_command


def test_the_portals_modules_import_fingerprinted_names(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "project.storage.ModuleAwareManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    paths = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    main = (tmp_path / paths["portal/main.js"]).read_text()
    imports = re.findall(r"""from\s+["']([^"']+)["']""", main)
    assert imports, "main.js imports nothing?"
    for name in imports:
        assert re.search(r"\.[0-9a-f]{12}\.js$", name), f"main.js imports {name} by its plain name"
