from django.urls import path

from bench.views import PlainLookupView, TrivialView
from project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("bench/plain-lookup/", PlainLookupView.as_view()),
    path("bench/trivial/", TrivialView.as_view()),
]
