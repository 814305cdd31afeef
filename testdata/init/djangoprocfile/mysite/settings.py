"""Settings of a small Django site that runs from a Procfile."""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "not-a-secret-only-for-tests")
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {}
USE_TZ = True
