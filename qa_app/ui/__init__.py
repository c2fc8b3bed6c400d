"""The chat page: ``mount_ui`` serves it (and the whole-document view) beside the API."""
from qa_app.ui.page import build_ui, mount_ui

__all__ = ["build_ui", "mount_ui"]
