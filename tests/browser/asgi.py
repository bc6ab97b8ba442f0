"""
ASGI application of the browser tests' server: the demo project's, with
static files served by Django, as ``runserver`` does for the demo.
"""

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from demo_project.asgi import application as demo_application

application = ASGIStaticFilesHandler(demo_application)
