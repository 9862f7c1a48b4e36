"""lazycelery's own versioned HTTP API (``/api/v1``): tasks with the filter language over memory
and the store, task detail, workers, queues, the audit log, a live Server-Sent Events stream,
and its OpenAPI document."""
