"""Which LLM failures stop a run, and which only fail the candidate that met them.

An ``LLMError`` reaches the engine after the client's retries. Most belong to one
request, so to one candidate: no answer in time (a slow or stuck generation on a
busy CPU), a 5xx or 429 on every attempt, a broken answer, a request the server
rejected for what it asked (e.g. HTTP 400: the prompt does not fit the context).
The engine records that candidate as invalid (while its child was made) or
failed (while it was scored), with the error as the reason, and the run goes on.

A failure that will come back for every candidate stops the run with its one
message instead (``stops_the_run``): the server could not be reached at all (the
last attempt could not connect: connection refused, unknown host, no route), the
URL is no http(s) URL, or the server refused who is asking or where (HTTP 401 or
403: the API key; 404: the URL or the model name). A connection that was made
and then broke (``HTTPProtocolError``) belongs to its request.
"""

from __future__ import annotations

import re

from archive import Failure

from ._errors import LLMError, LLMRejectedError, LLMResponseError
from .llm._http import HTTPProtocolError

#: HTTP statuses that every request of the run would get
_RECURRING_STATUS = frozenset({401, 403, 404})
#: how the client names the status in an ``LLMRejectedError``'s message
_REJECTED = re.compile(r"rejected the request \(HTTP (\d{3})\)")


def stops_the_run(error: LLMError) -> bool:
    """True when ``error`` will recur for every candidate (see the module doc)."""
    if isinstance(error, LLMResponseError):
        return False  # the server answered, with something unusable this time
    cause = error.__cause__
    if isinstance(cause, ValueError):
        return True  # the URL is no http(s) URL
    if isinstance(cause, OSError):  # the connection could not be made, or did not answer
        return not isinstance(cause, TimeoutError | HTTPProtocolError)
    if isinstance(error, LLMRejectedError):
        status = _REJECTED.search(str(error))
        return status is not None and int(status.group(1)) in _RECURRING_STATUS
    return False  # a 5xx or 429 on every attempt


def failure_kind(error: LLMError) -> Failure:
    """The kind of a candidate's failure caused by ``error``: ``timeout`` when the last
    attempt got no answer in time, else ``llm_error``."""
    return Failure.TIMEOUT if isinstance(error.__cause__, TimeoutError) else Failure.LLM_ERROR
