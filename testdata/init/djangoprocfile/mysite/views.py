import os

from django.http import JsonResponse


def index(request):
    return JsonResponse({"app": "djangoprocfile", "uid": os.getuid()})


def health(request):
    return JsonResponse({"status": "ok"})
