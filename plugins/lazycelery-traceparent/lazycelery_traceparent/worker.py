"""Importing this module installs the signal handlers: ``celery worker -I lazycelery_traceparent.worker``."""

from lazycelery_traceparent import install

install()
