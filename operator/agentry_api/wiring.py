"""How the operator hands configuration to the runtime: file paths, Secret mounts, ports.

Both sides import these names, so a pod rendered by the operator and the runtime inside it agree
on where things are without either one repeating a literal.
"""

from __future__ import annotations

import re

from .v1alpha1 import SecretKeyRef

#: Port the runtime listens on inside the pod; the Service exposes the same port.
RUNTIME_PORT = 8080
#: Directory the runtime ConfigMap is mounted at.
CONFIG_DIR = "/etc/agentry"
#: Key of the runtime ConfigMap (and file name under CONFIG_DIR) holding the AgentDeployment manifest.
CONFIG_KEY = "agent.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
#: Directory under which each referenced Secret key is projected as `<secret>/<key>`.
SECRETS_DIR = "/var/run/agentry/secrets"
#: Writable directory (an emptyDir) for SQLite and other pod-local state; the root filesystem is read-only.
DATA_DIR = "/var/lib/agentry"
#: Environment variables that override the directories above (tests and the dev pod runner use them).
SECRETS_DIR_ENV = "AGENTRY_SECRETS_DIR"
DATA_DIR_ENV = "AGENTRY_DATA_DIR"
#: Where the runtime writes the one-line reason it could not start: the pod spec's terminationMessagePath,
#: which the kubelet copies into the container's status (`lastState.terminated.message`) for the operator.
TERMINATION_LOG_PATH = "/dev/termination-log"
#: Environment variable that moves the termination message file (tests, a host process).
TERMINATION_LOG_ENV = "AGENTRY_TERMINATION_LOG"
#: Exit code of a runtime whose configuration cannot be used (a field, a Secret file, the model): only a
#: person can fix it. The operator reads it from the container status to tell it from a transient failure.
EXIT_CONFIG = 2
#: Exit code of a runtime that could not start for another reason (a dependency down, the port taken).
EXIT_START_FAILED = 3


def secret_file_path(ref: SecretKeyRef, *, secrets_dir: str = SECRETS_DIR) -> str:
    """Where the value of `ref` is found inside the pod."""
    return f"{secrets_dir}/{ref.name}/{ref.key}"


def secret_env_name(ref: SecretKeyRef) -> str:
    """Environment variable that, when set, supplies the value of `ref` instead of the file."""
    return "AGENTRY_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{ref.name}__{ref.key}".upper())
