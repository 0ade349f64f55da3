"""Gunicorn entry point (``hybridshop.web.wsgi:app``): settings come from Cloud Run's env."""

from __future__ import annotations

import logging

from hybridshop.web.app import create_app

if not logging.getLogger().handlers:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = create_app()
