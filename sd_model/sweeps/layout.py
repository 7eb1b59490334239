"""Chunk layout: how a sweep's leading dims are cut into chunks.

Chunks are rectangular blocks of the sweep's leading dims that coincide with the zarr
chunks: every store chunk belongs to exactly one sweep chunk, and zarr writes each chunk
file atomically. The layout depends on the model and the time grid only, never on the
number of workers, so a sweep gives the same numbers with one worker or many (an
adaptive solver's step sizes depend on the whole batch it integrates).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sd_model._meta import VariableInfo

#: Most scenarios per chunk when none is given: enough that NumPy's per-call overhead is
#: amortised over the batch.
DEFAULT_CHUNK_COMPILED = 250
#: Bytes of saved values a default chunk may hold (a batch keeps every variable at every
#: saved time until it ends): big models get smaller chunks, so memory stays bounded.
CHUNK_BYTES = 128 * 2**20
#: With the PySD fallback a chunk is a loop of single runs; small chunks resume finely.
DEFAULT_CHUNK_PYSD = 4


def chunk_layout(shape: tuple[int, ...], chunk_size: int) -> tuple[int, ...]:
    """Store chunk shape over the leading dims holding at most ``chunk_size`` scenarios.

    Trailing dims are kept whole while they fit; the first dim that does not fit is cut
    into runs of ``m`` indices; the dims before it are cut into single indices.

    Examples
    --------
    >>> chunk_layout((4, 10, 3), 12)
    (1, 4, 3)
    """
    k = len(shape)
    while k > 0 and math.prod(shape[k - 1 :]) <= chunk_size:
        k -= 1
    if k == 0:
        return tuple(shape)
    inner = math.prod(shape[k:])
    m = max(1, chunk_size // inner)
    return (*([1] * (k - 1)), min(m, shape[k - 1]), *shape[k:])


@dataclass(frozen=True)
class ChunkGrid:
    """The chunks of the leading dims, numbered in C order; regions computed on demand.

    A sweep of 1e8 scenarios has 4e5 chunks: listing their regions, or a Python object
    per scenario, would cost more memory than the sweep's status record itself.
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        """Chunks along each dim."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def n(self) -> int:
        return math.prod(self.counts)

    def region(self, k: int) -> tuple[slice, ...]:
        """Where chunk ``k`` lies in the leading dims."""
        index = np.unravel_index(int(k), self.counts)
        return tuple(
            slice(int(i) * c, min((int(i) + 1) * c, s))
            for i, c, s in zip(index, self.chunks, self.shape, strict=True)
        )

    def chunk_index(self, region: tuple[slice, ...]) -> tuple[slice, ...]:
        """The chunk numbers along each dim that a chunk-aligned region covers."""
        return tuple(
            slice(r.start // c, -(-r.stop // c)) for r, c in zip(region, self.chunks, strict=True)
        )

    def slabs(self, limit: int) -> Iterator[tuple[slice, ...]]:
        """Chunk-aligned blocks of at most ``limit`` scenarios (or one chunk), in C order."""
        block = list(chunk_layout(self.shape, limit))
        for d, (b, c, s) in enumerate(zip(block, self.chunks, self.shape, strict=True)):
            if b < s:  # cut dims: round to whole chunks
                block[d] = min(s, max(c, b // c * c))
        slab_grid = ChunkGrid(self.shape, tuple(block))
        for k in range(slab_grid.n):
            yield slab_grid.region(k)


def region_indices(region: tuple[slice, ...]) -> list[tuple[int, ...]]:
    """The multi-indices of the scenarios in ``region``, in C order."""
    return list(itertools.product(*[range(r.start, r.stop) for r in region]))


def default_chunk_size(
    backend: str,
    variables: Sequence[VariableInfo],
    coords: Mapping[str, Sequence[str]],
    n_times: int,
) -> int:
    """Scenarios per chunk: a function of the model and time grid only, never of the
    number of workers, so that the chunks (and an adaptive solver's steps) are the same
    however a sweep is run."""
    if backend != "compiled":
        return DEFAULT_CHUNK_PYSD
    per_scenario = 8 * sum(
        (n_times if v.time_dependent else 1) * math.prod(len(coords[d]) for d in v.dims)
        for v in variables
    )
    return max(1, min(DEFAULT_CHUNK_COMPILED, CHUNK_BYTES // max(per_scenario, 1)))
