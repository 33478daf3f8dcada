from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from accounts import views as accounts_views
from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the sign-in page's language switch
    path("admin/login/", accounts_views.admin_login),  # before the admin's own: non-staff go to the app
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", views.SwaggerDocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", views.RedocDocsView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/imaging/", include("imaging.api.urls")),
    path("api/v1/", include("annotation.api.urls")),
    path("api/v1/", include("review.api.urls")),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("datasets.api.urls")),
    path("api/v1/", include("inference.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("annotation.api.import_urls")),
    path("dicomweb/", include("imaging.dicomweb.urls")),
    path("ohif/", include("imaging.ohif.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

# Client routes of the browser app (frontend/src/App.tsx): Django answers them with the app's index.html.
APP_ROUTE = r"^(?:projects|cases|jobs|account)(?:/.*)?$"
urlpatterns += [re_path(APP_ROUTE, views.home, name="app")]
