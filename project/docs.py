"""The API's documentation pages (Swagger UI and ReDoc, served from drf-spectacular-sidecar's static files) under
the site's Content-Security-Policy, relaxed only where the two libraries need it:

- Swagger UI: its start-up script comes from a URL of its own (drf-spectacular's split view), not inline; its page
  and the library set inline styles.
- ReDoc: its one inline script (the settings) carries the request's nonce (docs/redoc.html); the library injects
  its styles inline and runs its search in a worker it makes from a blob: URL.
"""

from csp.constants import NONCE, UNSAFE_INLINE
from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


class RedocView(SpectacularRedocView):
    template_name = "docs/redoc.html"


swagger_ui = csp_update({"style-src": [UNSAFE_INLINE]})(SpectacularSwaggerSplitView.as_view(url_name="schema"))
redoc = csp_update({"script-src": [NONCE], "style-src": [UNSAFE_INLINE], "worker-src": ["blob:"]})(
    RedocView.as_view(url_name="schema")
)
