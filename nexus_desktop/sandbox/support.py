"""Which containment layers this machine can give, and what that leaves unenforced.

The approval dialog shows ``gaps`` in plain words, and a module is started only with the gaps
its approval accepted (``supervisor``).  Detected once per process.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

NETWORK_PORTS_ABI = 4
SCOPE_ABI = 6


@dataclass(frozen=True)
class Support:
    platform: str
    landlock_abi: int
    seccomp: bool
    namespaces: bool

    def layers(self) -> list[str]:
        """The layers the launcher requires of every child here (``enter`` fails closed)."""
        layers = []
        if self.landlock_abi >= 1:
            layers.append("landlock")
        if self.seccomp:
            layers.append("seccomp")
        if self.namespaces:
            layers.append("netns")
        return layers

    def gaps(self, *, network: bool, subprocess: bool) -> list[str]:
        """What the operating system cannot enforce for a module with these permissions."""
        if self.platform != "linux":
            return [
                "This operating system's sandbox is not built yet: what the module may do is checked "
                "only inside its own process, which the module itself could undo"
            ]
        gaps = []
        if self.landlock_abi < 1:
            gaps.append("Which files it may read and change is not enforced (this kernel has no Landlock)")
        if network and self.landlock_abi < NETWORK_PORTS_ABI:
            gaps.append(
                "Which hosts it may reach is not enforced: this kernel cannot hold its connections "
                "to NEXUS's network gatekeeper (Landlock network rules need Linux 6.7)"
            )
        if not network and not (self.namespaces or self.seccomp or self.landlock_abi >= NETWORK_PORTS_ABI):
            gaps.append("It is not kept off the network")
        if not self.namespaces and self.landlock_abi < SCOPE_ABI:
            gaps.append("It could send signals to your other programs (needs Linux 6.12 or user namespaces)")
        if subprocess and not self.namespaces:
            gaps.append(
                "If NEXUS itself is killed, programs the module started may keep running "
                "(user namespaces are not allowed here)"
            )
        return gaps


@functools.cache
def detect() -> Support:
    # Imported here: they load ctypes, which a module process importing NEXUS's own modules (its
    # audit hook refuses native code) must not pay for unless it asks for containment itself.
    from nexus_desktop.sandbox import bubblewrap, landlock, seccomp

    if sys.platform != "linux":
        return Support(sys.platform, 0, False, False)
    return Support("linux", landlock.abi(), seccomp.supported(), bubblewrap.usable())
