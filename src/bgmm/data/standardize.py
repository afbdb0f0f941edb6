"""The per-column affine map between data units and the model's standardised units."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bgmm.data.errors import DataError

__all__ = ["Standardizer"]


class Standardizer(NamedTuple):
    """Per-column affine map between data units ``y`` and standardised units ``z``.

    ``y = center + scale * z`` elementwise, i.e. ``y = c + D z`` with
    ``D = diag(scale)``.  Hence a mixture component ``N(mu, T^{-1})`` in ``z``
    units (mean ``mu``, precision ``T``) is ``N(c + D mu, D T^{-1} D)`` in ``y``
    units: its mean maps by :meth:`means_to_data`, its covariance by
    :meth:`covariance_to_data`, its precision ``D^{-1} T D^{-1}`` by
    :meth:`precision_to_data`, and a Cholesky factor ``L`` of the precision
    (``T = L L^T``) by :meth:`chol_precision_to_data` as ``D^{-1} L``, which is
    still lower triangular with a positive diagonal.

    Attributes
    ----------
    center : numpy.ndarray
        Shape ``(D,)``, float64: the column means of the fitted data.
    scale : numpy.ndarray
        Shape ``(D,)``, float64, positive: the column population standard
        deviations of the fitted data.
    """

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, source: str = "data") -> Standardizer:
        """Fit to the column means and population standard deviations of ``data``.

        Parameters
        ----------
        data : numpy.ndarray
            Shape ``(N, D)``, finite.
        source : str, optional
            Name of the data's file, used in error messages.

        Returns
        -------
        Standardizer
            With ``center`` and ``scale`` of shape ``(D,)``.

        Raises
        ------
        DataError
            If a column is constant (zero standard deviation).
        ValueError
            If ``data`` is not two-dimensional.
        """
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"data must have shape (N, D), got {data.shape}")
        center = data.mean(axis=0)
        scale = data.std(axis=0)
        # The mean of equal values can round off them, leaving a tiny nonzero std: compare too.
        constant = (scale == 0) | (data.max(axis=0) == data.min(axis=0))
        if constant.any():
            j = int(np.argmax(constant))
            raise DataError(
                f"{source}: column {j + 1} is constant (every value is {data[0, j]:g}); "
                "it carries no information for clustering, remove it"
            )
        return cls(center=center, scale=scale)

    def _checked(self, x: np.ndarray, square: bool) -> np.ndarray:
        """``x`` as float64 if its shape is ``(..., K, D)`` (``(..., K, D, D)`` if ``square``)."""
        x = np.asarray(x, dtype=np.float64)
        d = self.scale.shape[0]
        ok = x.ndim >= 2 and x.shape[-1] == d and (not square or x.shape[-2] == d)
        if not ok:
            expected = "(..., K, D, D)" if square else "(..., K, D)"
            raise ValueError(f"expected an array of shape {expected} with D={d}, got {x.shape}")
        return x

    def transform(self, data: np.ndarray) -> np.ndarray:
        """Standardise data: ``z = (y - center) / scale``.

        Parameters
        ----------
        data : numpy.ndarray
            Shape ``(N, D)``, in data units.

        Returns
        -------
        numpy.ndarray
            Shape ``(N, D)``, in standardised units.
        """
        data = self._checked(data, square=False)
        return (data - self.center) / self.scale

    def means_to_data(self, means: np.ndarray) -> np.ndarray:
        """Map component means to data units: ``center + scale * means``.

        Parameters
        ----------
        means : numpy.ndarray
            Shape ``(..., K, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D)``, in data units.
        """
        means = self._checked(means, square=False)
        return self.center + self.scale * means

    def chol_precision_to_data(self, chol: np.ndarray) -> np.ndarray:
        """Map Cholesky factors of precisions to data units: ``diag(1 / scale) @ L``.

        Parameters
        ----------
        chol : numpy.ndarray
            Shape ``(..., K, D, D)``: lower-triangular ``L`` with ``T = L L^T`` the
            precision in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``: lower-triangular with positive diagonal, the
            Cholesky factor of the precision in data units.
        """
        chol = self._checked(chol, square=True)
        return chol / self.scale[:, None]

    def covariance_to_data(self, cov: np.ndarray) -> np.ndarray:
        """Map covariances to data units: ``diag(scale) @ C @ diag(scale)``.

        Parameters
        ----------
        cov : numpy.ndarray
            Shape ``(..., K, D, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``, in data units.
        """
        cov = self._checked(cov, square=True)
        return cov * self.scale[:, None] * self.scale[None, :]

    def precision_to_data(self, prec: np.ndarray) -> np.ndarray:
        """Map precisions to data units: ``diag(1 / scale) @ P @ diag(1 / scale)``.

        Parameters
        ----------
        prec : numpy.ndarray
            Shape ``(..., K, D, D)``, in standardised units.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., K, D, D)``, in data units.
        """
        prec = self._checked(prec, square=True)
        return prec / (self.scale[:, None] * self.scale[None, :])
