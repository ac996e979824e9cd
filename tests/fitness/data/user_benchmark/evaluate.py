"""Trusted scorer of the sort_list example benchmark.

Runs in its own sandbox with input.json, answer.json and the candidate's
outputs under outputs/ (never the candidate's program). Prints
{"score": ..., "detail": ...} as its last line.
"""

import json


def verdict(score, detail):
    print(json.dumps({"score": score, "detail": detail}))


def main():
    with open("answer.json") as handle:
        expected = json.load(handle)
    try:
        with open("outputs/output.json") as handle:
            got = json.load(handle)
    except (OSError, ValueError) as error:
        return verdict(0.0, f"no readable output.json ({type(error).__name__})")
    if not isinstance(got, list) or len(got) != len(expected):
        return verdict(0.0, f"expected a list of {len(expected)} numbers")
    right = sum(g == e for g, e in zip(got, expected, strict=True))
    verdict(right / len(expected), f"{right} of {len(expected)} positions right")


if __name__ == "__main__":
    main()
