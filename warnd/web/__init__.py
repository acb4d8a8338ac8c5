"""The web console: ``warnd web`` (see docs/web.md and :mod:`warnd.web.app`)."""
