"""Run llama.cpp's server (through xllamacpp) as a process, until SIGTERM or SIGINT.

    python -m evolve.llm._llamacpp_main --model M.gguf --port 8080

It prints ``listening on http://HOST:PORT`` once the model is loaded. Used to
exercise :class:`~evolve.llm.SubprocessServer` (the vLLM launcher's code path)
against a real OpenAI-compatible server on machines without a GPU.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from evolve._errors import CladeforgeError
from evolve.llm._llamacpp import import_xllamacpp, llamacpp_params
from evolve.llm._model_files import check_gguf, find_embedded_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.llm._llamacpp_main")
    parser.add_argument("--model", help="GGUF file (default: the embedded model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n-parallel", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--alias", default=None)
    parser.add_argument("--verbosity", type=int, default=1)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        xllamacpp = import_xllamacpp()
        path = check_gguf(Path(args.model) if args.model else find_embedded_model())
        params = llamacpp_params(xllamacpp, path, host=args.host, port=args.port,
                                 n_parallel=args.n_parallel, n_ctx=args.n_ctx,
                                 threads=args.threads, seed=args.seed, alias=args.alias,
                                 verbosity=args.verbosity)
        server = xllamacpp.Server(params)
    except (CladeforgeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"listening on {server.listening_address}", flush=True)
    while not stop.wait(1.0):
        pass
    del server  # stops the server threads
    return 0


if __name__ == "__main__":
    sys.exit(main())
