"""The viewer's ASGI application: read-only JSON endpoints over a run's archive, the
page's static files, and the token check when it listens beyond loopback.

Endpoints (all GET):

- ``/api/run``: the run's name, state, stop reason, budget, LLM tokens used, the collapse
  monitor's readings and the archive's change counter;
- ``/api/version``: the change counter alone (the page polls it to update live);
- ``/api/graph``: every candidate as columns (``archive.GRAPH_COLUMNS``);
- ``/api/candidate/{id}``: one candidate's whole record as ``evolve show --json`` gives
  it (for code: its files and diffs against each parent).

Nothing is written: the archive is opened ``mode=ro``, and no endpoint takes a path.
Every response forbids inline scripts and framing (Content-Security-Policy), so text a
candidate carries can only ever be shown as text.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from archive import ArchiveError, ArchiveReader, UnknownCandidateError

from .._diversity import COLLAPSE_KEY
from .._errors import CladeforgeError
from .._genome_kinds import GENOME_KINDS
from .._report import show
from .._run import ARCHIVE_FILE

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "cladeforge_token"
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; object-src 'none'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


class ViewerError(CladeforgeError):
    """The viewer cannot start: no run there, or its extra is not installed."""


def _require_viewer_extra() -> None:
    """Raise ``ViewerError`` unless the viewer extra (Starlette, uvicorn) is installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ViewerError("evolve serve needs the viewer extra, which is not installed: "
                          "pip install 'cladeforge[viewer]'") from exc


def make_app(run_dir: str | Path, *, token: str | None = None) -> Any:
    """The viewer of the run in ``run_dir``; ``token``: every request must carry it (the
    ``token`` query parameter, which also sets a cookie, or ``Authorization: Bearer``)."""
    _require_viewer_extra()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    directory = Path(run_dir)
    if not (directory / ARCHIVE_FILE).is_file():
        raise ViewerError(f"{directory} is not a Cladeforge run (no {ARCHIVE_FILE} in it)")
    try:
        reader = ArchiveReader(directory / ARCHIVE_FILE)
    except ArchiveError as exc:
        raise ViewerError(str(exc)) from exc

    async def index(request: Request) -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # the archive's endpoints are plain functions: Starlette runs them in its thread pool,
    # so reading a large graph does not hold up the page's scripts and styles
    def run(request: Request) -> Any:
        version = reader.version()  # first: a change after it shows at the next poll
        meta = reader.meta()
        config = meta.get("config") or {}
        tokens = sum(int(u.get("prompt_tokens", 0)) + int(u.get("completion_tokens", 0))
                     for u in (meta.get("llm_usage") or {}).values())
        return JSONResponse({"name": config.get("name", directory.name),
                             "state": meta.get("state", "created"),
                             "stop_reason": meta.get("stop_reason"),
                             "budget": config.get("budget") or {}, "tokens": tokens,
                             "collapse": meta.get(COLLAPSE_KEY) or [],
                             "version": version})

    def version(request: Request) -> Any:
        return JSONResponse({"version": reader.version()})

    def graph(request: Request) -> Any:
        version = reader.version()
        return JSONResponse({"version": version, "columns": reader.graph()})

    def candidate(request: Request) -> Any:
        cid = request.path_params["cid"]
        try:
            found = reader.candidate(cid)
            data = show(found)
            kind = GENOME_KINDS.get(found.kind)
            if kind is not None:
                parents = {pid: reader.candidate(pid) for pid in found.parent_ids}
                data.update(kind.show(found, parents, directory))
        except UnknownCandidateError:
            return JSONResponse({"error": f"no candidate #{cid}"}, status_code=404)
        data["children"] = reader.children(cid)
        return JSONResponse(data)

    async def no_icon(request: Request) -> Any:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        Route("/api/run", run),
        Route("/api/version", version),
        Route("/api/graph", graph),
        Route("/api/candidate/{cid:int}", candidate),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            reader.close()

    return _Guarded(Starlette(routes=routes, lifespan=lifespan), token)


class _Guarded:
    """The app behind the token check (when a token is set) and the security headers."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _token_of(scope)
        if self.token is not None and not hmac.compare_digest(
                (given or "").encode(), self.token.encode()):
            await _send(send, 401, b"a token is needed: open the address evolve serve printed")
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if self.token is not None and _query_token(scope) is not None:
                    headers.append((b"set-cookie", (f"{TOKEN_COOKIE}={self.token}; HttpOnly; "
                                                    "SameSite=Strict; Path=/").encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _query_token(scope: Scope) -> str | None:
    from urllib.parse import parse_qs
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _token_of(scope: Scope) -> str | None:
    """The token a request carries: query parameter, bearer header, or cookie."""
    found = _query_token(scope)
    if found is not None:
        return found
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value.startswith(b"Bearer "):
            return value[7:].decode("latin-1")
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, token = part.strip().partition("=")
                if key == TOKEN_COOKIE:
                    return token
    return None


async def _send(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, announce: Callable[[str], None] = print) -> None:
    """Serve the viewer until interrupted. Beyond loopback a token is required: ``token``,
    or a new random one, printed once in the address to open."""
    import secrets

    app_token = token
    if app_token is None and not is_loopback(host):
        app_token = secrets.token_urlsafe(24)
    app = make_app(run_dir, token=app_token)  # checks the extra is installed
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{port}/" + (f"?token={app_token}" if app_token else "")
    announce(f"viewer of {run_dir} at {address} (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
