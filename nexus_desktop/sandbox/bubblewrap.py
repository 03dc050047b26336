"""bubblewrap (``bwrap``): the namespaces around a contained child, where the system allows them.

What it adds on top of Landlock and seccomp:
- a PID namespace: the child cannot see or signal any process outside it, and when the child's
  sandbox ends (or NEXUS dies, with ``--die-with-parent``) the kernel kills every process in it,
  daemons that double-forked included;
- a network namespace for children without network: no interface but their own loopback;
- IPC, UTS and cgroup namespaces; the root file system read-only, with only the profile's write
  paths bound writable; all capabilities dropped.

Ubuntu 23.10 and later forbid unprivileged user namespaces through AppArmor, and bwrap may be
missing: ``usable()`` probes once, and the launcher then runs without this layer (and says so).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from nexus_desktop.sandbox.profile import Profile

_PROBE_SECONDS = 10.0


def binary() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def usable() -> bool:
    """Whether bwrap is installed and may create the namespaces here (probed once per process)."""
    found = binary()
    if found is None or os.environ.get("NEXUS_NO_NAMESPACES") == "1":
        return False
    try:
        probe = subprocess.run(
            [found, *_common(die_with_parent=True), "--unshare-net", "--", "/bin/true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _common(*, die_with_parent: bool) -> list[str]:
    args = [
        "--unshare-user-try",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/dev/shm",
    ]
    if die_with_parent:
        args.append("--die-with-parent")
    return args


def wrap(profile: Profile, command: list[str], cwd: str | None = None) -> list[str]:
    found = binary()
    assert found is not None, "wrap() called without bwrap; check usable() first"
    args = [found, *_common(die_with_parent=profile.die_with_parent)]
    if profile.see_processes:
        # In the app's PID namespace, the child stays in the process group NEXUS kills (seccomp
        # refuses setsid/setpgid), so it must not get a session of its own either.
        args.remove("--unshare-pid")
        args.remove("--new-session")
    if not profile.network:
        args.append("--unshare-net")
    for path in profile.write:
        if os.path.exists(path) and not path.startswith("/dev/"):  # --dev made its own
            args += ["--bind", path, path]
    for path in profile.devices:
        if os.path.exists(path):
            args += ["--dev-bind", path, path]
    if cwd:
        args += ["--chdir", cwd]
    return [*args, "--", *command]
