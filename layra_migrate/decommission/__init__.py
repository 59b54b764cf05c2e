"""Retire the LiteLLM stack through the Docker SDK, with a verified archive and a way back.

Modules: ``client`` (reaching the engine), ``discovery`` (what belongs to the
stack), ``archive`` (folder, manifest, checksums, verification gate), ``dump``
(logical Postgres dump through exec), ``security`` (compromised litellm
versions, key-rotation checklist), ``interlock`` (MongoDB references),
``execute`` (the ordered run and its rollback), ``restore`` (the way back).
The Docker SDK is synchronous: core functions take a ``docker.DockerClient``.
"""

from __future__ import annotations
