import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

# Single local WADO-RS frames are answered ahead of the middleware chain (imaging.dicomweb.fastpath); every
# other request, and every refusal, is Django's.
from imaging.dicomweb.fastpath import wrap  # noqa: E402 - needs the apps loaded above

application = wrap(django_application)

# Routes, views and translations now rather than on each worker's first request (see config/gunicorn.py).
from config.warmup import warm_up  # noqa: E402 - needs the settings configured above

warm_up()
