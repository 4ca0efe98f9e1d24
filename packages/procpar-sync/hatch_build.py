"""Hatchling build hook: compile procpar_sync's C modules into the wheel with this interpreter's flags."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# _psem: semaphores, owner-aware locks, wait lists; _wire: framed messages; _queue: the queues' death-safe stream.
MODULES = ("_psem", "_wire", "_queue")


class CompileSemaphore(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "compile-semaphore"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        out_dir = os.path.join(self.directory, "_ext_build")
        os.makedirs(out_dir, exist_ok=True)
        cc = (sysconfig.get_config_var("CC") or "cc").split()
        cflags = ["-O2", "-fPIC", "-Wall", "-Werror=implicit-function-declaration", "-std=c11",
                  "-D_GNU_SOURCE", f"-I{sysconfig.get_paths()['include']}"]
        ldflags = (sysconfig.get_config_var("LDSHARED") or "").split()[1:] or ["-shared"]
        if "-shared" not in ldflags and "-bundle" not in ldflags:
            ldflags.append("-shared")
        for module in MODULES:
            source = os.path.join("src", "procpar_sync", f"{module}.c")
            target = os.path.join(out_dir, f"{module}{suffix}")
            subprocess.check_call([*cc, *cflags, source, "-o", target, *ldflags])
            build_data["force_include"][target] = f"procpar_sync/{module}{suffix}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
