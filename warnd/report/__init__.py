"""The half-year report (``warnd report``).

``tables``  periods and the Føre Var tables as pure functions over series
``render``  HTML (one self-contained file), Markdown, CSV
``charts``  the report's charts (matplotlib, SVG)
"""
