"""What ``evolve status`` and ``evolve show`` report, as JSON-ready dicts and as text."""

from __future__ import annotations

from collections import Counter
from typing import Any

from archive import FINAL_STATUSES, ArchiveIndex, Candidate, Status, Usage

from ._diversity import COLLAPSE_KEY, collapse_signature
from ._run import Run
from ._significance import CONFIDENCE, NOT_COMPARABLE, WITHIN_NOISE, compare


def summary(index: ArchiveIndex) -> dict[str, Any]:
    """The seed candidate and the best candidate with their scores per split, the split
    the best was chosen by (``best_by``), and whether the best beats the seed beyond noise
    on the validation split (``gain``, see ``gain_over_seed``).

    The best is chosen by validation score among validated candidates once a child has
    been validated; before that (or with ``fitness.validate_top: 0``, when only the seed
    gets a validation score, as a baseline) by training score. The test split is never
    used to choose.
    """
    seed = index.by_slot(0)
    validated = index.scored("validation")
    if any(c.slot != 0 for c in validated):
        best = max(validated, key=lambda c: (c.score("validation"), c.fitness or 0.0, -c.id))
        best_by = "validation"
    else:
        best, best_by = index.best("train"), "train"
    return {"seed": _brief(seed), "best": _brief(best), "best_by": best_by,
            "gain": gain_over_seed(seed, best)}


#: the failure kind reported for a candidate of an archive older than failure kinds
UNCLASSIFIED = "unclassified"


def children_report(index: ArchiveIndex) -> dict[str, Any]:
    """How the children (candidates with a parent, finished) fared, over the run and per
    operator: how many were made, how many were valid (evaluated: the child ran and was
    scored), the valid-child rate, how many valid ones needed a repair turn, and the
    others counted by failure kind (``Failure``; failed ones included), most frequent
    first."""
    made: Counter[str] = Counter()
    valid: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for c in index.candidates(status=FINAL_STATUSES):
        if not c.parent_ids:
            continue  # a founder: the seed or an initial unit
        made[c.operator] += 1
        if c.status is Status.EVALUATED:
            valid[c.operator] += 1
            repaired[c.operator] += bool((c.mutation or {}).get("repairs"))
        else:
            kind = c.failure.value if c.failure is not None else UNCLASSIFIED
            reasons.setdefault(c.operator, Counter())[kind] += 1

    def part(n_made: int, n_valid: int, n_repaired: int,
             by_reason: Counter[str]) -> dict[str, Any]:
        return {"made": n_made, "valid": n_valid,
                "valid_rate": round(n_valid / n_made, 4) if n_made else None,
                "repaired": n_repaired,
                "by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))}

    total = sum(reasons.values(), Counter())
    return {**part(made.total(), valid.total(), repaired.total(), total),
            "by_operator": {op: part(made[op], valid[op], repaired[op],
                                     reasons.get(op, Counter())) for op in sorted(made)}}


def format_children(children: dict[str, Any]) -> list[str]:
    """``children_report`` as lines: the run's totals, then one line per operator."""
    def line(part: dict[str, Any]) -> str:
        rate = f" ({part['valid_rate']:.0%})" if part["valid_rate"] is not None else ""
        text = f"{part['made']} made, {part['valid']} valid{rate}"
        if part["repaired"]:
            text += f" ({part['repaired']} after a repair)"
        if part["by_reason"]:
            text += "; not valid: " + ", ".join(f"{k} {v}" for k, v in part["by_reason"].items())
        return text

    if not children["made"]:
        return ["children: none finished yet"]
    return [f"children: {line(children)}",
            *(f"  {op}: {line(part)}" for op, part in children["by_operator"].items())]


#: ``gain_over_seed``'s verdict when the best candidate is the seed itself.
BEST_IS_SEED = "best is the seed"


def gain_over_seed(seed: Candidate | None, best: Candidate | None) -> dict[str, Any] | None:
    """The paired comparison of ``best`` against ``seed`` on the validation split
    (``_significance.Comparison`` as a dict), or None without both candidates.

    Its verdict is "beyond noise", "within noise", "not comparable" (no validation
    example was scored for both, e.g. nothing but the seed was validated), or
    ``BEST_IS_SEED``.
    """
    if seed is None or best is None:
        return None
    data = compare(best, seed, "validation").to_dict()
    if best.id == seed.id:
        data["verdict"] = BEST_IS_SEED
    return data


def status(run: Run) -> dict[str, Any]:
    store = run.storage
    counts = store.index.counts_by_status()
    usage = {k: Usage.from_dict(v) for k, v in (store.get_meta("llm_usage") or {}).items()}
    total = sum(usage.values(), Usage())
    state = store.get_meta("state", "created")
    if state == "running" and not run.is_running():
        state = "interrupted"  # the process died without saving its state: resume it
    budget = run.config.budget
    return {
        "name": run.config.name,
        "directory": str(run.directory),
        "state": state,
        "stop_reason": store.get_meta("stop_reason"),
        "mode": run.config.evolution.mode,
        "candidates": len(store),
        "counts": {s.value: counts[s] for s in Status},
        "children": children_report(store.index),
        "budget": {"candidates": budget.candidates, "tokens": budget.tokens,
                   "wall_time": budget.wall_time},
        "elapsed_seconds": round(float(store.get_meta("elapsed", 0.0)), 3),
        **summary(store.index),
        "llm": {
            "calls": total.calls,
            "cache_hits": total.cache_hits,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "tokens": total.tokens,
            "per_role": {k: u.to_dict() for k, u in usage.items()},
            "cached_responses": store.cache_size(),
        },
        "forked_from": store.get_meta("forked_from"),
        "collapse": collapse_status(store.get_meta(COLLAPSE_KEY) or [],
                                    run.config.diversity.window),
    }


def collapse_status(history: list[dict[str, Any]], window: int) -> dict[str, Any] | None:
    """The collapse monitor's last reading, how many there are, its warning now, and the
    generation of the first reading that showed the collapse signature (``first_warning``,
    None if none did; a warning may come and go as the run goes on). None: the run
    recorded no reading."""
    if not history:
        return None
    last = history[-1]
    first = next((history[end - 1]["generation"] for end in range(window, len(history) + 1)
                  if collapse_signature(history[:end], window)), None)
    return {"readings": len(history), "generation": last["generation"],
            "pass_at_k": last["pass_at_k"], "live_clades": last["live_clades"],
            "mean_distance": last["mean_distance"],
            "solved_entropy": last["solved_entropy"],
            "warning": collapse_signature(history, window), "first_warning": first}


def format_collapse(data: dict[str, Any]) -> list[str]:
    """``collapse_status`` in one or two lines."""
    passes = ", ".join(f"pass@{k} {'-' if v is None else f'{v:.2f}'}"
                       for k, v in data["pass_at_k"].items())
    distance = data["mean_distance"]
    lines = [f"diversity (generation {data['generation']}, reading {data['readings']}): "
             f"{passes}; {data['live_clades']} live clades; mean distance "
             + ("-" if distance is None else f"{distance:.2f}")]
    if data["warning"]:
        lines.append(f"WARNING: {data['warning']}")
    elif data.get("first_warning") is not None:
        lines.append(f"(a collapse was signalled at generation {data['first_warning']} "
                     "and has not held since)")
    return lines


def show(candidate: Candidate) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "slot": candidate.slot,
        "kind": candidate.kind,
        "status": candidate.status.value,
        "reason": candidate.reason,
        "failure": None if candidate.failure is None else candidate.failure.value,
        "operator": candidate.operator,
        "generation": candidate.generation,
        "parents": list(candidate.parent_ids),
        "alive": candidate.alive,
        "retired_by": candidate.retired_by,
        "genome": dict(candidate.genome),
        "scores": {k: v.to_dict() for k, v in candidate.scores.items()},
        "mutation": candidate.mutation,
        "usage": candidate.usage.to_dict(),
        "timings": dict(candidate.timings),
    }


def _brief(candidate: Candidate | None) -> dict[str, Any] | None:
    if candidate is None:
        return None
    return {"id": candidate.id, "operator": candidate.operator,
            "status": candidate.status.value,
            "train": candidate.score("train"), "validation": candidate.score("validation"),
            "task_prompts": list(candidate.genome.get("task_prompts", [])),
            "commit": candidate.genome.get("commit")}


def format_status(data: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
    llm = data["llm"]
    lines = [
        f"run {data['name']} ({data['directory']}): {data['state']}"
        + (f" - {data['stop_reason']}" if data.get("stop_reason") else ""),
        f"candidates: {data['candidates']} ({counts})",
        *format_children(data["children"]),
        f"LLM: {llm['calls']} calls, {llm['tokens']} tokens, {llm['cache_hits']} cache hits",
    ]
    lines.append(f"seed: {format_brief(data['seed'])}")
    lines.append(f"best: {format_brief(data['best'])}  [chosen by {data['best_by']} score]")
    if data.get("gain") is not None:
        lines.append(format_gain(data["gain"], data["best_by"]))
    if data.get("collapse"):
        lines += format_collapse(data["collapse"])
    return "\n".join(lines)


def format_gain(gain: dict[str, Any], best_by: str) -> str:
    """One line: does the best beat the seed on validation beyond noise? (``summary``'s
    ``gain`` and ``best_by``)"""
    head = "gain over the seed"
    if gain["verdict"] == BEST_IS_SEED:
        return f"{head}: none, the best is the seed"
    if best_by != "validation":
        return (f"{head}: no validation comparison is possible, the best was chosen by "
                f"{best_by} score (no child was validated)")
    split = gain["split"]
    if gain["verdict"] == NOT_COMPARABLE:
        return f"{head} on {split}: not comparable, no example was scored for both"
    counts = (f"{gain['won']} won, {gain['lost']} lost, {gain['tied']} tied of "
              f"{gain['examples']}")
    if gain["unmatched"]:
        counts += f"; {gain['unmatched']} scored for only one left out"
    interval = ""
    if gain.get("interval"):
        low, high = gain["interval"]
        interval = f" [{CONFIDENCE:.0%} interval {low:+.3f} to {high:+.3f}]"
    p = gain["p_value"]
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:#.2g}"
    luck = gain["verdict"] == WITHIN_NOISE and gain["mean_difference"] > 0
    verdict = gain["verdict"] + (" - this may be luck" if luck else "")
    return (f"{head} on {split}: {gain['mean_difference']:+.3f}{interval} "
            f"({counts}; sign test {p_text}): {verdict}")


def format_brief(brief: dict[str, Any] | None) -> str:
    if brief is None:
        return "-"
    scores = f"#{brief['id']} train {_fmt(brief['train'])} validation {_fmt(brief['validation'])}"
    if brief.get("commit"):
        return f"{scores}  commit {brief['commit'][:12]} ({brief['operator']})"
    prompt = " / ".join(p for p in brief["task_prompts"] if p)
    if len(prompt) > 100:
        prompt = prompt[:97] + "..."
    return f"{scores}  {prompt!r}"


def format_show(data: dict[str, Any]) -> str:
    lines = [
        f"candidate #{data['id']} (slot {data['slot']}, generation {data['generation']}): "
        f"{data['status']}" + (f" ({data['failure']})" if data.get("failure") else "")
        + (f" - {data['reason']}" if data["reason"] else ""),
        f"operator: {data['operator']}   parents: {data['parents'] or '-'}   "
        f"alive: {data['alive']}" + (f" (retired by #{data['retired_by']})"
                                     if data["retired_by"] else ""),
    ]
    for name, why in ((data["mutation"] or {}).get("declined") or {}).items():
        named = why if why.startswith(f"{name}:") else f"{name}: {why}"
        lines.append(f"drawn but could not apply, another operator was drawn: {named}")
    lines.append("genome:")
    if "diffs" in data:
        lines.append(f"  commit: {data['commit'] or '-'}")
    for i, prompt in enumerate(data["genome"].get("task_prompts", [])):
        lines.append(f"  task prompt {i + 1}: {prompt}")
    lines.append(f"  mutation prompt: {data['genome'].get('mutation_prompt', '')}")
    for item in data["genome"].get("context", []):
        lines.append(f"  context: {item}")
    for split, score in data["scores"].items():
        right = sum(1 for e in score["examples"] if e[1] >= 1.0)
        lines.append(f"score {split}: {score['mean']:.3f} ({right}/{len(score['examples'])})")
        if not split.startswith("stage"):  # each example: its id, score and the answer
            lines += [f"  {e[0]}: {e[1]:.3f} {_clip(e[2], 200)}" for e in score["examples"]]
    mutation = data["mutation"] or {}
    for n, ex in enumerate(mutation.get("exchanges", []), start=1):
        if ex.get("kind") == "self_modify":
            lines.append(f"self-modification run {n} (ended {ex.get('end')}, "
                         f"{ex.get('calls', 0)} LLM calls, {ex.get('refused', 0)} refused):")
            lines += [f"  {line}" for line in str(ex.get("log", "")).splitlines()]
            continue
        lines.append(f"mutation request {n}:")
        for message in ex.get("messages", []):
            lines.append(f"  [{message.get('role')}] {message.get('content')}")
        notes = [note for note in ("cached" if ex.get("cached") else "", _cut(ex)) if note]
        lines.append(f"mutation response {n}{''.join(f' ({note})' for note in notes)}:")
        if ex.get("response") is None and ex.get("error"):
            lines.append(f"  (no answer: {ex['error']})")
        else:
            lines.append(f"  {ex.get('response')}")
    if "diffs" in data:
        lines.extend(_code_lines(data))
    usage = data["usage"]
    lines.append(f"LLM usage: {usage['calls']} calls, "
                 f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, "
                 f"{usage['cache_hits']} cache hits")
    return "\n".join(lines)


def _cut(exchange: dict[str, Any]) -> str:
    """A note when the reply stopped at max_tokens (finish_reason "length"), else ""."""
    if exchange.get("finish_reason") != "length":
        return ""
    limit = (exchange.get("params") or {}).get("max_tokens")
    at = f"max_tokens = {limit}" if limit is not None else "max_tokens"
    return f"cut at {at}: the model had not finished; raise the mutator's max_tokens"


def _code_lines(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if data["files"] is not None:
        lines.append(f"files ({len(data['files'])}):")
        lines.extend(f"  {f['path']}  ({f['size']} bytes)" for f in data["files"])
    for pid, diff in data["diffs"].items():
        lines.append(f"diff against parent #{pid}:" + ("" if diff else " (no changes)"))
        lines.extend(diff.rstrip("\n").splitlines())
    for where, error in data["repo_errors"].items():
        lines.append(f"git ({where}): {error}")
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
