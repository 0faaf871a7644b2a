"""The live status page (`api.ui.routes`): login, live state, rate change and cancel."""

from api.ui.routes import ui_routes, wants_page

__all__ = ["ui_routes", "wants_page"]
