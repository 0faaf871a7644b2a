"""The live status page (`api.ui.routes`): login, live state, rate, cancel, suspend and resume."""

from api.ui.routes import ui_routes, wants_page

__all__ = ["ui_routes", "wants_page"]
