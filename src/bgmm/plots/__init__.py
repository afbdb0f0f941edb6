"""Figures of a fit, each as a :class:`~matplotlib.figure.Figure` (to inspect or adjust) or
written as a PNG:

* :func:`location_figure` / :func:`plot_location_kde` (``locations.png``): where each
  component lies and how far it spreads, over the data (:mod:`bgmm.plots.locations`);
* :func:`trace_figure` / :func:`plot_trace` (``trace.png``): densities and traces per chain,
  with the sampler's log density (:mod:`bgmm.plots.trace`);
* :func:`plot_assignments` (``assignments.png``): each observation's most probable component
  and how uncertain it is (:mod:`bgmm.plots.assignments`);
* :func:`plot_similarity` (``similarity.png``): the posterior similarity matrix ordered by a
  point partition (:mod:`bgmm.plots.similarity`);
* :func:`plot_selection` (``selection.png``): elpd_loo by K and structure
  (:mod:`bgmm.plots.selection`).

Figures are never registered with ``pyplot``, so no window is ever opened whatever the
configured backend, and nothing has to be closed by the caller; PNGs are written with the
Agg renderer.
"""

from bgmm.plots.assignments import assignments_figure, plot_assignments
from bgmm.plots.locations import location_figure, plot_location_kde
from bgmm.plots.selection import plot_selection
from bgmm.plots.similarity import plot_similarity, similarity_order
from bgmm.plots.trace import plot_trace, trace_figure

__all__ = [
    "assignments_figure",
    "location_figure",
    "plot_assignments",
    "plot_location_kde",
    "plot_selection",
    "plot_similarity",
    "plot_trace",
    "similarity_order",
    "trace_figure",
]
