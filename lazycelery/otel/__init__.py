"""OpenTelemetry spans from the event stream (``lazycelery record --otel``, ``tail --otel``).

Headless. The OpenTelemetry SDK and the OTLP exporters (extra ``otel``) are imported only by
``spans`` and ``pipeline`` when tracing is turned on: ``ids``, ``settings`` and ``sampling`` are
pure Python. See docs/tracing.md.
"""
