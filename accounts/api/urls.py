from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("me/tokens/", views.ApiTokenListView.as_view(), name="me-token-list"),
    path("users/", views.UserListView.as_view(), name="user-list"),
    path("me/tokens/<int:token_id>/", views.ApiTokenDetailView.as_view(), name="me-token-detail"),
]
