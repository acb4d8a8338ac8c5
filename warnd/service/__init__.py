"""Running as a system service.

``daemon``  signals, reload, sd_notify, the scheduler, watchdog
``health``  ``warnd status``, ``/healthz`` and ``/metrics``, all read from the store
``backup``  consistent copies of the store (``warnd backup``)
"""
