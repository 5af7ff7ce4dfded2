"""REST APIs over HTTP: JSON pages in, Arrow record batches out.

An extract walks the API page by page and turns each page's records into
one Arrow record batch as it arrives, so memory holds a few pages whatever
the size of the API. Where each part lives:

- ``connector.py``: ``HttpConnector`` (the entry point ``etl_nb.connectors:http``),
  the extract body's checks and the walk over the pages;
- ``client.py``: the connect body (headers, auth, params, timeout,
  ``max_retries``), one GET with redirects and retries, and the HTTP errors;
- ``paginate.py``: one class per pagination style, and the registry of styles
  (add a style there);
- ``records.py``: JSON pages to record batches, and the first page's schema
  that later pages are made to fit;
- ``prefetch.py``: the thread that fetches pages ahead.

docs/connectors-http.md is the user's side of the same.
"""

from etl_nb.connectors.http.connector import HttpConnector

__all__ = ["HttpConnector"]
