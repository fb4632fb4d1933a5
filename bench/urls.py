from django.urls import path

from bench.views import PlainLookupView, TrivialView, minimal, raw_lookup
from project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("bench/raw-lookup/", raw_lookup),
    path("bench/plain-lookup/", PlainLookupView.as_view()),
    path("bench/minimal/", minimal),
    path("bench/trivial/", TrivialView.as_view()),
]
