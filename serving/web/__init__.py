"""The service's own web pages (``fadecast serve``, path ``/``): cells, a cell, a cohort, the model.

``pages`` serves the HTML shells and static assets (plotly.js's basic bundle from
``static/vendor`` — nothing fetched from a CDN); ``views`` answers the read-only JSON the pages
draw (``GET /v1/cells`` and ``/v1/views/...``), computed through the same forecast and advice
functions as the API (:mod:`serving.predict`) and cached per cell version by ``cell_views``.
"""
