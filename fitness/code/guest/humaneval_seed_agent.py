"""A HumanEval agent: ask the LLM to complete a Python function, return the whole program.

``solve(prompt, entry_point)`` gets the problem's prompt (imports, helpers and
the signature and docstring of the function ``entry_point``) and returns the
text of a Python program that defines ``entry_point``. The LLM is reached
through the sandbox's gateway with ``cladeforge_llm`` (standard library only).
"""

import re

import cladeforge_llm as llm

# EVOLVE-BLOCK-START
SYSTEM = ("You are an expert Python programmer. Complete the function the user gives you. "
          "Answer with one ```python code block holding the complete function.")
MAX_TOKENS = 512
TEMPERATURE = 0.0


def build_messages(prompt, entry_point):
    """The chat messages that ask for ``entry_point``."""
    request = f"Complete the Python function `{entry_point}`:\n\n```python\n{prompt}```"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}]
# EVOLVE-BLOCK-END


def extract_code(answer):
    """The code in the answer: its first fenced block, else the answer itself."""
    blocks = re.findall(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", answer, re.S)
    code = blocks[0] if blocks else answer
    return code.strip("\n")


def assemble(prompt, code, entry_point):
    """A whole program: the prompt, then the answer's full definition or the function body."""
    if re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        return prompt + "\n\n" + code + "\n"  # redefines the prompt's stub, keeps its helpers
    lines = code.splitlines()
    if lines and not any(line.startswith((" ", "\t")) for line in lines if line.strip()):
        lines = ["    " + line for line in lines]  # a bare body: indent it under the signature
    return prompt + "\n".join(lines) + "\n"


def solve(prompt, entry_point):
    answer = llm.chat(build_messages(prompt, entry_point), max_tokens=MAX_TOKENS,
                      temperature=TEMPERATURE)
    return assemble(prompt, extract_code(answer), entry_point)
