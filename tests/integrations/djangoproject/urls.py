from django.urls import path

from . import views

urlpatterns = [
    path("hello", views.hello),
    path("async-hello", views.async_hello),
    path("boom", views.boom),
]
