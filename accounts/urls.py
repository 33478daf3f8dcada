from django.urls import path
from django.views.generic import RedirectView

from accounts import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("password_change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    # Django's default LOGIN_REDIRECT_URL: old bookmarks and links go to the app instead of a 404.
    path("profile/", RedirectView.as_view(url="/", permanent=False), name="profile"),
]
