"""The Inference dashboard's curves break where no model was called for a while, instead of drawing
a straight line across hours the app was idle or closed."""

from __future__ import annotations

import numpy as np

from nexus_desktop.control.dashboard_series import GAP_SECONDS, Growing


def test_calls_minutes_apart_are_joined_and_calls_hours_apart_are_not() -> None:
    series = Growing()
    series.extend(np.array([0.0, 1.0, 2.0]), np.array([80.0, 82.0, 81.0]))
    series.extend(np.array([3.0, 2.0 + GAP_SECONDS / 2]), np.array([79.0, 78.0]))  # close: joined
    x, y = series.view()
    assert np.isfinite(y).all() and len(x) == 5
    series.extend(np.array([4 * 3600.0, 4 * 3600.0 + 1]), np.array([90.0, 91.0]))  # hours later
    x, y = series.view()
    assert len(x) == 8 and np.isnan(y[5]) and np.isfinite(np.delete(y, 5)).all()
    assert (np.diff(x) > 0).all()  # still in time order, so the plot's searchsorted keeps working
