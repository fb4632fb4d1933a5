"""Static files in production: compressed, with content hashes in their names (cached for a year), and the portal's
JavaScript modules' `import` statements rewritten to those hashed names too. Otherwise a browser could load a new
`main.js` with the modules it imports by plain name still cached from the previous deploy."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleAwareManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
