"""Background co-evolution of the module builder (issue 14, item 6).

A step (the ``module-coevolution`` scheduled task, off unless Settings turn it on) reads which
kinds of module requests failed (``classify``), proposes harder requests aimed at those kinds
(``curriculum``), builds them with the current template and with a candidate that adds advice
for that kind, and keeps the candidate as a new template version only when it passed more of
them (``step``).  Versions and their trials are stored (``versions``, migration v11).
"""
