"""The control plane: the scheduler, the autonomous loop and its ledger, the governor of
character budgets, and the model-call metrics the dashboards and Prometheus read.  Qt-free."""
