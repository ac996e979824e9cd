"""Runs inside an agent sandbox: ask the candidate agent to solve each HumanEval problem.

Standard library only, Python 3.8+. ``python3 humaneval_agent_runner.py SECONDS``
reads ``problems.json`` (a list of ``{"task_id", "prompt", "entry_point"}``,
nothing else: the hidden tests never enter this sandbox), imports ``agent.py``
and calls ``agent.solve(prompt, entry_point)`` once per problem, each within
SECONDS (a ``ProblemTimeout`` is raised in the agent when they are up). It
writes ``completions.json`` ``{task_id: program text}`` after every problem,
so a run cut short still leaves what was done. A problem whose ``solve``
raised or returned no string is left out (the host counts it as unsolved) and
why goes to ``errors.json`` ``{task_id: "ExceptionType: message"}`` and, with
the traceback, to stderr.

This runner is not a trust boundary: the agent runs in this process and could
write ``completions.json`` itself. Whatever it holds is only a program to be
tested, in another sandbox, by the trusted harness.
"""

import json
import os
import signal
import sys
import traceback


class ProblemTimeout(BaseException):
    """The time for one problem is up (a BaseException, so ``except Exception`` lets it by)."""


def _alarm(signum, frame):
    raise ProblemTimeout("the time for this problem is up")


def _write(name, data):
    with open(name + ".tmp", "w") as handle:
        json.dump(data, handle)
    os.replace(name + ".tmp", name)


def main(argv):
    seconds = float(argv[1])
    with open("problems.json") as handle:
        problems = json.load(handle)
    sys.path.insert(0, os.getcwd())
    import agent

    signal.signal(signal.SIGALRM, _alarm)
    completions, errors = {}, {}
    for problem in problems:
        task_id = problem["task_id"]
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                program = agent.solve(problem["prompt"], problem["entry_point"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as exc:  # the agent's failure on one problem: note it, go on
            errors[task_id] = (f"{type(exc).__name__}: {exc}")[:300]
            sys.stderr.write(f"{task_id}: {traceback.format_exc(limit=3)}")
            _write("errors.json", errors)
            continue
        if isinstance(program, str):
            completions[task_id] = program
            _write("completions.json", completions)
        else:
            errors[task_id] = f"solve returned {type(program).__name__}, not a str"
            _write("errors.json", errors)
    _write("completions.json", completions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
