"""The Dashboards page: scheduler health, gate decisions, agent budgets, inference, training and the
panels modules register, each a live view over plain snapshots read off the Qt thread
(``control/dashboard_data.py``, ``control/dashboard_budgets.py``, ``control/dashboard_series.py``).
"""
