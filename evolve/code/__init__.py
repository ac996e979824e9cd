"""The code wing of ``evolve``: programs and agents that evolve as commits in a git repository.

``CODE`` is the wing's ``GenomeKind`` (registered in ``evolve/_genome_kinds.py``):
its genome (``CodeGenome``: a commit and a mutation prompt), species
(``CodeSpecies``: founders from the benchmark's seed files, children committed
to the run's repository, scored by the benchmark in sandboxes), the run's
repository (``RunRepo``), the workshop where an agent modifies itself, the
bridge from the sandbox gateway to the run's LLM clients, and the code
operators (``evolve.code.operators``).
"""

from ._genome import CODE_KIND, CodeGenome
from ._kind import CODE, CodeKind
from ._repo import REPO_DIR, RepoError, RunRepo
from ._species import CodeSpecies

__all__ = ["CODE", "CODE_KIND", "CodeGenome", "CodeKind", "CodeSpecies", "REPO_DIR",
           "RepoError", "RunRepo"]
