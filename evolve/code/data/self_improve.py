"""The self-improvement step of a Cladeforge agent: diagnose, then implement (DGM style).

Cladeforge runs this file inside a sandbox, on a checkout of the agent's own
code, with EVALUATION.md (how the agent did: scores, failures) and PROBLEM.md
(the task) beside it. It asks the LLM, through the gateway, first for a
diagnosis of what to improve, then for SEARCH/REPLACE edits to the agent's own
files, and applies them in place. Cladeforge diffs the files afterwards: the
diff is the child. This file is part of the agent, so it evolves too.
Standard library only.
"""

import os
import re
import sys

import cladeforge_llm as llm

SKIP = {"cladeforge_llm.py"}
BLOCK = re.compile(
    r"(?:^|\n)(?P<path>[\w./-]+\.py)?\s*\n?<{5,9} SEARCH\n(?P<search>.*?)\n?={5,9}\n"
    r"(?P<replace>.*?)\n?>{5,9} REPLACE", re.S)


def own_files():
    return {name: open(name).read() for name in sorted(os.listdir("."))
            if name.endswith(".py") and name not in SKIP}


def ask(question, max_tokens):
    return llm.chat([{"role": "system", "content": "You are an expert Python programmer "
                      "improving an AI agent's own source code."},
                     {"role": "user", "content": question}], max_tokens=max_tokens)


def apply_blocks(answer, files):
    applied = 0
    for match in BLOCK.finditer(answer):
        path = match.group("path") or next(iter(files))
        search, replace = match.group("search"), match.group("replace")
        text = files.get(path)
        if text is None or not search or text.count(search) != 1:
            continue
        files[path] = text.replace(search, replace)
        applied += 1
    return applied


def main():
    files = own_files()
    evaluation = open("EVALUATION.md").read() if os.path.exists("EVALUATION.md") else ""
    problem = open("PROBLEM.md").read() if os.path.exists("PROBLEM.md") else ""
    listing = "\n\n".join(f"{p}\n```python\n{t}\n```" for p, t in files.items())
    diagnosis = ask(f"The agent's task:\n{problem}\n\nHow it did:\n{evaluation}\n\n"
                    f"Its code:\n{listing}\n\nIn a few sentences: what is the most useful "
                    "single improvement to the agent's code?", 200)
    answer = ask(f"Implement this improvement:\n{diagnosis}\n\nThe code:\n{listing}\n\n"
                 "Answer only with edits in this format, repeated as needed:\nfile.py\n"
                 "<<<<<<< SEARCH\nexact lines to replace\n=======\nnew lines\n"
                 ">>>>>>> REPLACE", 600)
    applied = apply_blocks(answer, files)
    for path, text in files.items():
        with open(path, "w") as handle:
            handle.write(text)
    print("diagnosis:", " ".join(diagnosis.split())[:300])
    print("edits applied:", applied)
    return 0


if __name__ == "__main__":
    sys.exit(main())
