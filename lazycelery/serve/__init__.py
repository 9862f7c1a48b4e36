"""`lazycelery serve`: a Flower-compatible HTTP API and Prometheus metrics over the same ingest
(one writer thread, the in-memory index). The pure parts (Flower's shapes, the task listing,
search, auth, metrics) import no web framework; only ``app`` and ``server`` import Starlette
and uvicorn, lazily, from the command."""
