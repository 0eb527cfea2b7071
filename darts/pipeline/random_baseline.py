"""The random-search baselines of Tables 1 and 2: cells drawn uniformly from the same space
(24 CNN and 8 RNN samples at paper scale, per the tables' footnotes), later selected and trained
exactly like DARTS' own cells."""

from __future__ import annotations

import random
from pathlib import Path

from darts.genotypes import random_genotype

from darts.rundir import GENOTYPE, sample_name


def sample(space: str, count: int, out: Path) -> list[Path]:
    """Write ``out/sample<i>/genotype.json`` for i < count; sample i is drawn with seed i."""
    written = []
    for i in range(count):
        path = out / sample_name(i) / GENOTYPE
        random_genotype(space, random.Random(i)).save(path, name=f"random_{space}-{i}", source=f"uniform, seed {i}")
        written.append(path)
    return written
