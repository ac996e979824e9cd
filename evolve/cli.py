"""The ``evolve`` command line: run, resume, fork, status, report, lineage, show, checkout,
sandbox.

Errors a user can fix print one line and exit with code 2; Ctrl-C stops a run
cleanly (exit code 130) and ``evolve resume`` carries on. Output whose reader
stops reading (``evolve show RUN ID | head``) ends quietly with exit code 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from archive import ArchiveError, LineageGraph
from sandboxes import SandboxError

from ._config import load_config
from ._errors import CladeforgeError
from ._genome_kinds import GENOME_KINDS
from ._html_report import html_report
from ._progress import ProgressBar
from ._report import format_brief, format_gain, format_show, format_status, show, status, summary
from ._run import Run

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = _handle(args)
        sys.stdout.flush()  # a reader that has gone is met here, not at the exit's flush
    except BrokenPipeError:
        _discard_stdout()
        return 0
    return code


def _handle(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except (CladeforgeError, ArchiveError, SandboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\nstopped; continue with 'evolve resume RUN_DIR'", file=sys.stderr)
        return EXIT_INTERRUPTED


def _discard_stdout() -> None:
    """Point standard output at /dev/null: its reader closed the pipe (e.g. ``| head``),
    and Python flushes what is still buffered at exit (Python's documented recipe for
    SIGPIPE, without the traceback)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout: nothing to flush
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evolve", description="Cladeforge: evolve prompts with an archive of lineages.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="start a new run from a YAML config")
    p.add_argument("config", help="path to the run's YAML config (see runs/*.yaml)")
    p.add_argument("--name", help="run name (default: the config's name or file name)")
    _add_common_run_options(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("resume", help="continue a stopped or interrupted run")
    p.add_argument("run_dir", help="the run's directory, e.g. runs/quickstart")
    _add_common_run_options(p)
    p.set_defaults(handler=_cmd_resume)

    p = sub.add_parser("fork", help="start a new run from a run's archive after candidate N")
    p.add_argument("run_dir")
    p.add_argument("--at", type=int, required=True, metavar="N",
                   help="keep candidates 1..N of the source run")
    p.add_argument("--name", required=True, help="name of the new run")
    p.add_argument("--no-start", action="store_true", help="create the fork but do not run it")
    _add_common_run_options(p)
    p.set_defaults(handler=_cmd_fork)

    p = sub.add_parser("status", help="state, counts, best candidate and LLM usage of a run")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("report", help="one self-contained HTML file: fitness, pass@k and "
                                      "diversity over time, operators, the best's lineage")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write it (default: RUN_DIR/report.html)")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("serve", help="a read-only web viewer of a run's lineage and candidates, "
                                     "live while it runs (pip install 'cladeforge[viewer]')")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; any other "
                        "address requires a token, printed once in the address to open)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("lineage", help="the lineage graph, or one candidate's ancestry")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("tree", "json", "graphml", "dot"), default="tree")
    p.add_argument("--id", type=int, help="only this candidate and its ancestors")
    p.set_defaults(handler=_cmd_lineage)

    p = sub.add_parser("show", help="one candidate: genome, parents, mutation, scores; for code, "
                                    "its commit and the diff against each parent")
    p.add_argument("run_dir")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_show)

    p = sub.add_parser("checkout", help="write a code candidate's files into a directory")
    p.add_argument("run_dir")
    p.add_argument("id", type=int)
    p.add_argument("directory", help="where to write the files (created if missing; must be "
                                     "empty)")
    p.set_defaults(handler=_cmd_checkout)

    p = sub.add_parser("sandbox", help="build the sandbox image; check which backends work here")
    sandbox = p.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    q = sandbox.add_parser("build", help="build the default sandbox image (Python 3 with numpy)")
    q.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    q.add_argument("--method", choices=("auto", "dockerfile", "debootstrap"), default="auto",
                   help="dockerfile needs a container registry; debootstrap builds offline from "
                        "the system's apt sources (default: auto, whichever works here)")
    q.set_defaults(handler=_cmd_sandbox_build)
    q = sandbox.add_parser("check", help="which sandbox backends work on this machine, and why not")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(handler=_cmd_sandbox_check)
    return parser


def _add_common_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config option, e.g. --set budget.candidates=20 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_run(args: argparse.Namespace) -> int:
    # quoted: YAML would read a name such as "off", "yes" or "12" as a bool or a number
    overrides = list(args.overrides) + ([f"name={json.dumps(args.name)}"] if args.name else [])
    run = Run.create(load_config(args.config, overrides))
    return _execute(run, args.quiet)


def _cmd_resume(args: argparse.Namespace) -> int:
    return _execute(Run.open(args.run_dir, args.overrides), args.quiet)


def _cmd_fork(args: argparse.Namespace) -> int:
    run = Run.fork(args.run_dir, at=args.at, name=args.name, overrides=args.overrides)
    print(f"forked {args.run_dir} at candidate {args.at} into {run.directory}")
    if args.no_start:
        run.close()
        return 0
    return _execute(run, args.quiet)


def _execute(run: Run, quiet: bool) -> int:
    print(f"run {run.config.name}: {run.directory}", file=sys.stderr)
    bar = None if quiet else ProgressBar()
    try:
        reason = run.execute(progress=bar)
    finally:
        if bar is not None:
            bar.close()
        result = summary(run.storage.index)
        run.close()
    print(f"stopped: {reason}")
    what = run.kind.noun
    print(f"seed {what}: {format_brief(result['seed'])}")
    print(f"best {what}: {format_brief(result['best'])}  [chosen by {result['best_by']} score]")
    if result["gain"] is not None:  # does the best beat the seed beyond noise?
        print(format_gain(result["gain"], result["best_by"]))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    run = Run.open(args.run_dir)
    try:
        data = status(run)
    finally:
        run.close()
    print(json.dumps(data, indent=2) if args.json else format_status(data))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    run = Run.open(args.run_dir)
    try:
        text = html_report(run.storage, state=status(run)["state"])
    finally:
        run.close()
    output = Path(args.output) if args.output else Path(args.run_dir) / "report.html"
    output.write_text(text, encoding="utf-8")
    print(output)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .viewer import serve
    serve(args.run_dir, host=args.host, port=args.port)
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    run = Run.open(args.run_dir)
    try:
        graph = LineageGraph.from_index(run.storage.index)
        if args.id is not None:
            run.storage.get(args.id)  # a clear error for an unknown id
            graph = graph.ancestry(args.id)
        if args.format == "json":
            print(json.dumps(graph.to_json(), indent=2))
        elif args.format == "graphml":
            graph.write_graphml(sys.stdout.buffer)
        elif args.format == "dot":
            print(graph.to_dot())
        else:
            print(graph.to_tree_text())
    finally:
        run.close()
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    run = Run.open(args.run_dir)
    try:
        candidate = run.storage.get(args.id)
        data = show(candidate)
        kind = GENOME_KINDS.get(candidate.kind)
        if kind is not None:
            parents = {pid: run.storage.get(pid) for pid in candidate.parent_ids}
            data.update(kind.show(candidate, parents, run.directory))
    finally:
        run.close()
    print(json.dumps(data, indent=2) if args.json else format_show(data))
    return 0


def _cmd_checkout(args: argparse.Namespace) -> int:
    run = Run.open(args.run_dir)
    try:
        candidate = run.storage.get(args.id)
    finally:
        run.close()
    kind = GENOME_KINDS.get(candidate.kind) or run.kind
    paths = kind.checkout(candidate, run.directory, Path(args.directory))
    print(f"candidate #{args.id} ({candidate.genome.get('commit', '')}): {len(paths)} files "
          f"written to {args.directory}")
    return 0


def _cmd_sandbox_build(args: argparse.Namespace) -> int:
    from sandboxes import build_image

    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    tag = build_image(force=args.force, method=args.method, progress=progress)
    print(tag)
    return 0


def _cmd_sandbox_check(args: argparse.Namespace) -> int:
    from sandboxes import check_backends

    statuses = check_backends(build_hint="run 'evolve sandbox build'")
    if args.json:
        print(json.dumps([status.to_dict() for status in statuses], indent=2))
    else:
        for status in statuses:
            print(f"{status.name:8} {'yes' if status.available else 'no ':3}  {status.detail}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
