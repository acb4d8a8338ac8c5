"""From findings to the people who need them.

``decide``    findings → substance alerts (episodes, grouping, severity, notices,
              source health)
``outbox``    alerts and deliveries written before sending; dispatch, retries, expiry
``routing``   who gets what (routes, tags, default and muted targets)
``silences``  ``warnd silence``;  ``quiet``: quiet hours;  ``digest``: the digest
``wording``   subject and plain text;  ``render``: email HTML, Teams card
              (``templates/``), what each target receives;  ``charts``: the PNG
``send``      one message to one target through apprise
``commands``  ``warnd test-notify``, ``warnd digest``, the outbox part of ``status``
"""
