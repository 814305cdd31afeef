from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.index),
    path("health/", views.health),
]
