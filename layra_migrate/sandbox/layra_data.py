"""Realistic Layra data for the sandbox, the tests and the benchmarks.

It holds every irregular case a real deployment holds (see the data notes in
docs/MIGRATION.md): proxy URLs in many spellings, ``""``/``null`` URLs, both key
spellings, the wrong ``model_list`` document shape, dangling ``selected_model``,
``models: []``, entries without ``score_threshold``, soft-deleted documents,
fork keys (``provider``, ``system_*`` ids), nodes without ``modelConfig``.

While generating, it tallies what it generated (:class:`Expected`): the oracle
tests compare the tool against. The tally is counted from the generator's own
choices, not by re-implementing the tool's logic.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

PROXY_SPELLINGS = [
    "http://litellm-proxy:4000/v1",
    "http://litellm-proxy:4000",
    "http://172.17.0.1:4000/v1",
    "http://localhost:4000/v1",
    "http://host.docker.internal:4000/v1",
    "HTTP://LiteLLM-Proxy:4000/v1/",
    "http://127.0.0.1:4000/",
]
# Look close to the proxy but are not it, or are already direct.
DIRECT_URLS = [
    "https://api.deepseek.com",
    "https://api.openai.com/v1",
    "http://localhost:11434/v1",
    "http://litellm-proxy:4001/v1",
    "https://generativelanguage.googleapis.com/v1beta/openai/",
]
PROXIED_NAMES = [
    "deepseek-reasoner",  # direct deepseek route
    "deepseek-chat",
    "gemini-2.5-flash",
    "kimi-k2",  # ollama_chat via Ollama Cloud
    "thesis-default",  # model_group_alias -> deepseek-reasoner
    "gpt-4o",  # the thesis workflows asked for it; no route
    "gpt-oss-120b",  # load-balanced group: ambiguous
    "voyage-3",  # embeddings: not a chat target
    "claude-sonnet-4",  # anthropic: not automatic
    "openai/gpt-4.1-mini",  # wildcard passthrough
]
# Canary secrets: obviously fake, unique, searchable in any output.
MASTER_KEY = "sk-CANARYmasterKEY-0001"
VIRTUAL_KEYS = [f"sk-CANARYvirtualKEY{i:04d}-ijklmnop" for i in range(8)]
PLACEHOLDER_KEYS = ["sk-1234", "sk-default-xxx", "PLEASE_SET_API_KEY_IN_ENV", "", None]
DIRECT_KEYS = ["sk-CANARYdirectDEEPSEEK-0000", "sk-proj-CANARYdirectOPENAI-0000"]


@dataclass
class Expected:
    """What was generated, per location."""

    documents: Counter[str] = field(default_factory=Counter)
    references: Counter[str] = field(default_factory=Counter)
    via_proxy: Counter[str] = field(default_factory=Counter)
    by_name: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    users_by_name: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    missing_url: Counter[str] = field(default_factory=Counter)
    wrong_shape: int = 0
    dangling: int = 0
    empty_models: int = 0
    missing_score_threshold: int = 0
    vlm_without_config: int = 0
    spellings: Counter[str] = field(default_factory=Counter)
    camel_refs: int = 0
    snake_workflow_refs: int = 0

    def proxied_total(self) -> int:
        return sum(self.via_proxy.values())


@dataclass
class Dataset:
    model_config: list[dict[str, Any]]
    conversations: list[dict[str, Any]]
    workflows: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    expected: Expected

    def collections(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "model_config": self.model_config,
            "conversations": self.conversations,
            "workflows": self.workflows,
            "nodes": self.nodes,
        }


class _Gen:
    def __init__(
        self, seed: int, names: list[str], direct_urls: list[str], direct_keys: list[Any]
    ) -> None:
        self.rng = random.Random(seed)
        self.names = names
        self.direct_urls = direct_urls
        self.direct_keys = direct_keys
        self.exp = Expected()
        self.t0 = datetime(2026, 1, 19, 9, 0, 0)

    def when(self) -> datetime:
        return self.t0 + timedelta(minutes=self.rng.randrange(0, 60 * 24 * 200))

    def uid(self, prefix: str) -> str:
        return f"{prefix}_{uuid.UUID(int=self.rng.getrandbits(128)).hex}"

    def url_choice(self) -> tuple[Any, bool, bool]:
        """(url or sentinel, proxied, missing) — ``...`` means the key is absent."""
        r = self.rng.random()
        if r < 0.70:
            return self.rng.choice(PROXY_SPELLINGS), True, False
        if r < 0.88:
            return self.rng.choice(self.direct_urls), False, False
        return self.rng.choice(["", None, ...]), False, True

    def key_choice(self, proxied: bool) -> Any:
        if proxied:
            r = self.rng.random()
            if r < 0.5:
                return MASTER_KEY
            if r < 0.8:
                return self.rng.choice(VIRTUAL_KEYS)
            return self.rng.choice(PLACEHOLDER_KEYS)
        return self.rng.choice(self.direct_keys)

    def config(
        self,
        location: str,
        user: str,
        *,
        camel: bool,
        with_id: bool = True,
        name: str | None = None,
    ) -> dict[str, Any]:
        url, proxied, missing = self.url_choice()
        name = name or self.rng.choice(self.names)
        key = self.key_choice(proxied)
        if camel:
            cfg: dict[str, Any] = {}
            if with_id:
                cfg["modelId"] = self.uid("thesis") if self.rng.random() > 0.1 else ""
            cfg.update(
                {
                    "modelName": name,
                    "apiKey": key,
                    "baseUsed": [{"name": "Thesis Corpus", "baseId": self.uid("thesis")}],
                    "systemPrompt": "You are a helpful assistant.",
                    "temperature": self.rng.choice([-1, 0.2, 0.7]),
                    "maxLength": self.rng.choice([-1, 4096]),
                    "topP": -1,
                    "topK": -1,
                    "scoreThreshold": 10,
                    "useTemperatureDefault": True,
                }
            )
            if url is not ...:
                cfg["modelURL"] = url
            self.exp.camel_refs += 1
        else:
            cfg = {}
            if with_id:
                cfg["model_id"] = (
                    self.uid("thesis") if self.rng.random() > 0.05 else self.uid("system")
                )
            cfg.update(
                {
                    "model_name": name,
                    "api_key": key,
                    "base_used": [{"name": "Thesis Corpus", "baseId": self.uid("thesis")}],
                    "system_prompt": "You are a helpful assistant.",
                    "temperature": self.rng.choice([-1, 0.3]),
                    "max_length": -1,
                    "top_P": self.rng.choice([-1, 0.9]),
                    "top_K": -1,
                }
            )
            if url is not ...:
                cfg["model_url"] = url
            if self.rng.random() < 0.8:
                cfg["score_threshold"] = -1
            elif location == "model_config":
                self.exp.missing_score_threshold += 1
            if self.rng.random() < 0.1:
                cfg["provider"] = "litellm"  # a fork's extra key: preserved
        self.exp.references[location] += 1
        if missing:
            self.exp.missing_url[location] += 1
        if proxied:
            self.exp.via_proxy[location] += 1
            self.exp.by_name[name][location] += 1
            self.exp.users_by_name[name].add(user)
            self.exp.spellings[url] += 1
        return cfg


def build_dataset(
    users: int = 40,
    seed: int = 7,
    names: list[str] | None = None,
    conversations_per_user: int = 3,
    workflows_per_user: int = 1,
    direct_urls: list[str] | None = None,
    direct_keys: list[Any] | None = None,
) -> Dataset:
    """A deterministic realistic dataset for ``users`` users.

    ``direct_urls``/``direct_keys``: what the configurations that already bypass
    the proxy hold (the sandbox points them at its provider stub).
    """
    g = _Gen(
        seed,
        names or PROXIED_NAMES,
        direct_urls or DIRECT_URLS,
        direct_keys if direct_keys is not None else DIRECT_KEYS + [None],
    )
    mc: list[dict[str, Any]] = []
    convs: list[dict[str, Any]] = []
    wfs: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    for u in range(users):
        user = f"user{u:05d}" if u else "thesis"
        # 1. model_config (one per user); some irregular shapes
        shape = g.rng.random()
        if u % 17 == 5:
            mc.append(
                {
                    "username": user,
                    "model_id": g.uid("thesis"),
                    "model_list": [
                        {
                            "model_name": "deepseek-reasoner",
                            "model_url": PROXY_SPELLINGS[0],
                            "api_key": MASTER_KEY,
                        }
                    ],
                }
            )
            g.exp.wrong_shape += 1
        elif u % 23 == 7:
            mc.append({"username": user, "selected_model": "", "models": []})
            g.exp.empty_models += 1
        else:
            models = [
                g.config("model_config", user, camel=False) for _ in range(g.rng.randint(1, 4))
            ]
            selected = models[0].get("model_id", "")
            doc: dict[str, Any] = {"username": user, "selected_model": selected, "models": models}
            if shape < 0.08:
                doc["selected_model"] = g.uid("thesis")  # deleted model
                g.exp.dangling += 1
            if shape > 0.93:
                doc["is_delete"] = True
            mc.append(doc)
        g.exp.documents["model_config"] += 1
        # 2. conversations: snapshots without model_id
        for c in range(conversations_per_user):
            conv = {
                "conversation_id": f"{user}_{uuid.UUID(int=g.rng.getrandbits(128)).hex}",
                "username": user,
                "conversation_name": f"Chapter {c + 1} notes",
                "model_config": g.config("conversations", user, camel=False, with_id=False),
                "created_at": g.when(),
                "last_modify_at": g.when(),
                "is_read": True,
                "is_delete": g.rng.random() < 0.05,
                "turns": [
                    {
                        "message_id": g.uid("msg"),
                        "user_message": "Summarise chapter 2",
                        "ai_message": {"type": "text", "data": "..."},
                    }
                ],
            }
            convs.append(conv)
            g.exp.documents["conversations"] += 1
        # 3. workflows: camelCase from the UI, snake_case from scripts, in one collection
        for w in range(workflows_per_user):
            wf_nodes: list[dict[str, Any]] = [{"id": "node_start", "type": "start", "data": {}}]
            for n in range(g.rng.randint(1, 3)):
                camel = g.rng.random() < 0.6
                if not camel:
                    g.exp.snake_workflow_refs += 1
                wf_nodes.append(
                    {
                        "id": f"node_vlm_{n}",
                        "type": "vlm",
                        "data": {
                            "nodeType": "vlm",
                            "name": f"LLM {n}",
                            "modelConfig": g.config("workflows", user, camel=camel),
                        },
                    }
                )
            if g.rng.random() < 0.2:
                wf_nodes.append(
                    {
                        "id": "node_vlm_x",
                        "type": "vlm",
                        "data": {"nodeType": "vlm", "name": "unconfigured"},
                    }
                )
                g.exp.vlm_without_config += 1
            wf_nodes.append({"id": "node_code", "type": "code", "data": {"code": "print(1)"}})
            wfs.append(
                {
                    "workflow_id": f"{user}_wf{w}",
                    "username": user,
                    "workflow_name": "thesis pipeline",
                    "nodes": wf_nodes,
                    "edges": [{"source": "node_start", "target": "node_vlm_0"}],
                    "created_at": g.when(),
                    "last_modify_at": g.when(),
                }
            )
            g.exp.documents["workflows"] += 1
        # 4. saved custom nodes (map keyed by name; names may hold spaces)
        if u % 3 == 0:
            custom = {
                f"Summariser {k}": {
                    "data": {
                        "nodeType": "vlm",
                        "modelConfig": g.config("custom_nodes", user, camel=True),
                    }
                }
                for k in range(g.rng.randint(1, 2))
            }
            custom["plain code"] = {"data": {"nodeType": "code", "code": "x = 1"}}
            nodes.append({"username": user, "custom_nodes": custom})
            g.exp.documents["nodes"] += 1
    return Dataset(mc, convs, wfs, nodes, g.exp)


def seed_database(db: Any, dataset: Dataset) -> None:
    """Insert a dataset with a synchronous PyMongo database handle."""
    for name, docs in dataset.collections().items():
        if docs:
            db[name].insert_many([dict(d) for d in docs], ordered=False)


async def seed_database_async(db: Any, dataset: Dataset, batch: int = 2000) -> None:
    for name, docs in dataset.collections().items():
        for i in range(0, len(docs), batch):
            await db[name].insert_many([dict(d) for d in docs[i : i + batch]], ordered=False)
