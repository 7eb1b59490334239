"""Random draws of the compiled backend: one seeded stream per scenario, one draw per step.

Semantics (Vensim's): a RANDOM function gives one value per subscript cell per time
step, and every use of the variable within the step sees that value: the value saved
for a time is the value the step from that time integrated. (PySD draws again at every
call unless it caches the variable, which it does for variables read in more than one
place only; so its saved value of a variable read once is another draw than the one its
stock integrated.) Methods evaluating a step several times (RK4, adaptive) are refused,
as for DELAY FIXED.

The value is drawn from the stated distribution, shifted and stretched where the
function has those arguments, and *truncated* to ``[min, max]``: drawn from the
distribution conditioned on the interval (PySD's ``truncnorm``/``truncexpon``), not
clipped onto its bounds. The seed argument of the call is ignored, as PySD ignores it:
reproducibility comes from the run's seed.

Streams: every scenario has its own stream, derived from ``(seed, scenario id)`` with
:class:`numpy.random.SeedSequence`, so a scenario's draws do not depend on which other
scenarios share its batch, on the batch size or on the number of workers. Each time
step gives the scenario a block of ``Program.random_cells`` uniform numbers in (0, 1),
one per cell of every random call of the model; each call turns its own uniforms into
its distribution through the inverse distribution function. A step's uniforms are a
pure function of (seed, scenario id, step index): they are generated in chunks of steps
from ``SeedSequence(seed, spawn_key=(scenario id, chunk))``, so what a step sees does
not depend on which functions ran before (the right-hand side, the observation at a
saved time, the initialisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

# Uniform numbers generated per scenario at once (a chunk of steps); fixes the stream
# layout, so changing it changes every seeded result.
_CHUNK_VALUES = 4096
# Generator.random gives multiples of 2**-53 in [0, 1); shifting by half a unit keeps
# the inverse distribution functions finite (no 0, no 1).
_HALF_ULP = 2.0**-54


def fresh_seed() -> int:
    """A seed from the operating system's entropy, to record and reuse.

    Reduced to 63 bits (as :meth:`sd_model.sampling.SampleSpec.resolved` does) so that
    it fits the integer attributes of netCDF and zarr files.
    """
    return int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]


def calls_random(abstract_model: Any) -> bool:
    """True when a PySD abstract model calls a RANDOM function (in any section)."""
    from pysd.translators.structures import abstract_expressions as ae

    from sd_model.compiler._builtins import RANDOM_FUNCTIONS

    nodes = (ae.AbstractSyntax, list, tuple)

    def walk(node: Any) -> bool:
        if isinstance(node, ae.CallStructure):
            fn = getattr(node.function, "reference", "")
            if isinstance(fn, str) and (fn.startswith("random_") or fn in RANDOM_FUNCTIONS):
                return True
        if isinstance(node, ae.LookupsStructure):
            return False  # numbers only
        children = node if isinstance(node, list | tuple) else vars(node).values()
        return any(walk(x) for x in children if isinstance(x, nodes))

    return any(
        walk(comp.ast)
        for sec in abstract_model.sections
        for el in sec.elements
        for comp in el.components
        if isinstance(comp.ast, nodes)
    )


class Uniforms:
    """The uniform numbers of a batch of scenarios, by time step.

    Parameters
    ----------
    seed : int
        The run's seed (non-negative).
    ids : sequence of int
        One stream identity per scenario of the batch (scenario ``k`` of a sweep: ``k``).
    cells : int
        Uniform numbers per scenario per step (``Program.random_cells``).
    initial_time, time_step : float
        The time grid: step ``n`` is at ``initial_time + n * time_step``.
    """

    def __init__(
        self,
        seed: int,
        ids: Sequence[int],
        cells: int,
        initial_time: float,
        time_step: float,
    ) -> None:
        self.seed = int(seed)
        self.ids = tuple(int(i) for i in ids)
        self.cells = int(cells)
        self.steps_per_chunk = max(1, _CHUNK_VALUES // max(self.cells, 1))
        self._t0 = float(initial_time)
        self._dt = float(time_step)
        self._chunk = -1
        self._values = np.empty((len(self.ids), 0, self.cells))

    def _load(self, chunk: int) -> None:
        k = self.steps_per_chunk
        out = np.empty((len(self.ids), k, self.cells))
        for b, ident in enumerate(self.ids):
            ss = np.random.SeedSequence(self.seed, spawn_key=(ident, chunk))
            out[b] = np.random.Generator(np.random.PCG64(ss)).random((k, self.cells))
        out += _HALF_ULP
        self._values = out
        self._chunk = chunk

    def at(self, t: Any, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        """The uniforms of the call at ``offset`` (shaped ``(B, *shape)``) at time ``t``.

        ``t`` must be a time of the grid (fixed-step Euler visits only those); the
        step is the nearest one.
        """
        step = round((float(t) - self._t0) / self._dt)
        chunk, row = divmod(step, self.steps_per_chunk)
        if chunk != self._chunk:
            self._load(chunk)
        size = math.prod(shape)
        block = self._values[:, row, offset : offset + size]
        return block.reshape((len(self.ids), *shape))


def _floats(*xs: Any) -> list[np.ndarray]:
    # No broadcasting needed: the uniforms have the call's full shape and the
    # parameters are aligned to the same context, so every result has that shape.
    return [np.asarray(x, dtype=float) for x in xs]


def uniform(u: Any, lo: Any, hi: Any) -> np.ndarray:
    """RANDOM UNIFORM / RANDOM 0 1: uniform on ``[lo, hi]``."""
    u, lo, hi = _floats(u, lo, hi)
    return np.asarray(lo + u * (hi - lo))


def normal(u: Any, lo: Any, hi: Any, mean: Any, sd: Any) -> np.ndarray:
    """RANDOM NORMAL: normal(mean, sd) truncated to ``[lo, hi]`` (``mean`` when sd is 0)."""
    u, lo, hi, mean, sd = _floats(u, lo, hi, mean, sd)
    spread = sd > 0
    s = np.where(spread, sd, 1.0)
    a = (lo - mean) / s
    b = (hi - mean) / s
    # Work in the lower tail, where the normal CDF keeps its relative precision: an
    # interval right of the mean is mirrored (a draw from [3, 5] standard deviations
    # would otherwise come from 1 - 1e-3 ... 1 - 3e-7, a few digits only).
    flip = a > 0
    lo_z = np.where(flip, -b, a)
    hi_z = np.where(flip, -a, b)
    p_lo = special.ndtr(lo_z)
    p_hi = special.ndtr(hi_z)
    z = special.ndtri(p_lo + u * (p_hi - p_lo))
    x = mean + s * np.where(flip, -z, z)
    return np.asarray(np.clip(np.where(spread, x, mean), lo, hi))


def exponential(u: Any, lo: Any, hi: Any, shift: Any, stretch: Any) -> np.ndarray:
    """RANDOM EXPONENTIAL: ``shift + stretch * Exp(1)`` truncated to ``[lo, hi]``.

    The exponential forgets its past: truncated at ``lo`` above ``shift`` it is the
    same distribution started at ``lo`` (as PySD writes it, ``loc=max(min, shift)``).
    """
    u, lo, hi, shift, stretch = _floats(u, lo, hi, shift, stretch)
    spread = stretch > 0
    s = np.where(spread, stretch, 1.0)
    start = np.maximum(lo, shift)
    mass = -np.expm1(-np.maximum((hi - start) / s, 0.0))  # P(start <= X <= hi)
    x = start - s * np.log1p(-u * mass)
    return np.asarray(np.clip(np.where(spread, x, shift), lo, hi))


def poisson(u: Any, lo: Any, hi: Any, mean: Any, shift: Any, stretch: Any) -> np.ndarray:
    """RANDOM POISSON: ``shift + stretch * Poisson(mean)`` truncated to ``[lo, hi]``."""
    u, lo, hi, mean, shift, stretch = _floats(u, lo, hi, mean, shift, stretch)
    spread = stretch > 0
    s = np.where(spread, stretch, 1.0)
    m = np.maximum(mean, 0.0)
    k_lo = np.maximum(np.ceil((lo - shift) / s), 0.0)
    k_hi = np.floor((hi - shift) / s)
    f_lo = np.where(k_lo > 0, special.pdtr(np.maximum(k_lo - 1, 0.0), m), 0.0)
    f_hi = np.where(k_hi >= 0, special.pdtr(np.maximum(k_hi, 0.0), m), 0.0)
    k = stats.poisson.ppf(f_lo + u * (f_hi - f_lo), m)
    k = np.clip(k, k_lo, np.maximum(k_hi, k_lo))  # rounding at the interval's ends
    x = shift + s * k
    return np.asarray(np.clip(np.where(spread, x, shift), lo, hi))


def triangular(u: Any, lo: Any, hi: Any, start: Any, peak: Any, end: Any) -> np.ndarray:
    """RANDOM TRIANGULAR: triangular on ``[start, end]`` with mode ``peak``, truncated."""
    u, lo, hi, a, b, c = _floats(u, lo, hi, start, peak, end)
    b = np.clip(b, a, c)
    wide = c > a
    w = np.where(wide, c - a, 1.0)
    left = np.where(b > a, b - a, 1.0)
    right = np.where(c > b, c - b, 1.0)

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, a, c)
        below = np.where(b > a, (x - a) ** 2 / (w * left), 0.0)
        above = np.where(c > b, 1.0 - (c - x) ** 2 / (w * right), 1.0)
        return np.asarray(np.where(x <= b, below, above))

    f_lo, f_hi = cdf(lo), cdf(hi)
    q = f_lo + u * (f_hi - f_lo)
    x = np.where(
        q * w < b - a,
        a + np.sqrt(np.maximum(q * w * (b - a), 0.0)),
        c - np.sqrt(np.maximum((1.0 - q) * w * (c - b), 0.0)),
    )
    return np.asarray(np.clip(np.where(wide, x, a), lo, hi))


#: Distribution name (``_builtins.RANDOM_PARAMS``) -> the function the emitter calls.
DRAWS = {
    "uniform": uniform,
    "normal": normal,
    "exponential": exponential,
    "poisson": poisson,
    "triangular": triangular,
}
