import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Routes, views and translations now rather than on each worker's first request (see config/gunicorn.py).
from config.warmup import warm_up  # noqa: E402 - needs the settings configured above

warm_up()
