"""``evolve serve``: a read-only web viewer of one run's archive, live while it runs.

``make_app(run_dir)`` is the ASGI application (Starlette): JSON endpoints over an
``archive.ArchiveReader`` and the page's static files; ``serve`` runs it with uvicorn.
Needs the ``viewer`` extra (``pip install 'cladeforge[viewer]'``).
"""

from ._app import ViewerError, make_app, serve

__all__ = ["ViewerError", "make_app", "serve"]
