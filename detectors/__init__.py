"""Detection: per-series findings and the per-substance Føre Var synthesis.

``detectors`` never imports ``warnd``.
"""
