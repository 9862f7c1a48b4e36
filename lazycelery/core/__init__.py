"""The headless core: records, the task index, the event reader and the filter language.

Nothing under ``lazycelery.core`` imports prompt_toolkit (a test enforces it), so ``tail``, the
one-shot commands and plugins can use it without the TUI.
"""
