"""Modules: the plugin host.  Modules add tools, characters, chat interceptors, scheduled tasks
and dashboard panels through the hooks in ``hookspecs.py``.

Nothing a module contains runs until a person has approved exactly its current files; this
package only reads manifests and files, and keeps the record of what was approved.

- ``manifest``: the validated ``nexus-module.toml``
- ``install``: safe installs from a folder, .zip or .whl; ``content_hash``
- ``discovery``: finds bundled, installed and developer modules, one bad module never stops the rest
- ``lifecycle``: states, allowed transitions, approvals and the audit log (SQLite)
- ``registry``: ``ModuleHost``, the plugin manager, ``NEXUS_LOAD_MODULES``/``NEXUS_TRACE_HOOKS``
"""
