"""Provider catalog: direct OpenAI-compatible base URL and default key variable.

Source: LiteLLM's provider docs and each provider's OpenAI-compatibility docs
(see docs/MIGRATION.md, "Provider table").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str | None  # None: needs the entry's api_base
    key_envs: tuple[str, ...]  # first set one wins; first is the one to recommend
    openai_chat: bool = True
    unsupported_reason: str | None = None
    key_required: bool = True


_UNSUPPORTED_ANTHROPIC = (
    "anthropic speaks its native Messages API; its OpenAI layer is not for production"
)

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
        Provider("deepseek", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",)),
        Provider(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        ),
        Provider(
            "ollama_chat", "http://localhost:11434/v1", ("OLLAMA_API_KEY",), key_required=False
        ),
        Provider("ollama", "http://localhost:11434/v1", ("OLLAMA_API_KEY",), key_required=False),
        Provider("groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
        Provider("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
        Provider("openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
        Provider(
            "together_ai", "https://api.together.xyz/v1", ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY")
        ),
        Provider("xai", "https://api.x.ai/v1", ("XAI_API_KEY",)),
        Provider("hosted_vllm", None, ("HOSTED_VLLM_API_KEY",), key_required=False),
        Provider(
            "azure",
            None,
            ("AZURE_API_KEY",),
            openai_chat=False,
            unsupported_reason=(
                "azure needs a resource endpoint, api-version and deployment: not automatic"
            ),
        ),
        Provider(
            "anthropic",
            None,
            ("ANTHROPIC_API_KEY",),
            openai_chat=False,
            unsupported_reason=_UNSUPPORTED_ANTHROPIC,
        ),
        Provider(
            "voyage",
            "https://api.voyageai.com/v1",
            ("VOYAGE_API_KEY",),
            openai_chat=False,
            unsupported_reason="voyage serves embeddings only: not a chat target",
        ),
        Provider(
            "cohere",
            None,
            ("COHERE_API_KEY",),
            openai_chat=False,
            unsupported_reason="cohere has no OpenAI-compatible chat endpoint LiteLLM uses",
        ),
        Provider(
            "bedrock",
            None,
            ("AWS_ACCESS_KEY_ID",),
            openai_chat=False,
            unsupported_reason=(
                "bedrock needs AWS request signing: not an OpenAI-compatible endpoint"
            ),
        ),
        Provider(
            "vertex_ai",
            None,
            ("GOOGLE_APPLICATION_CREDENTIALS",),
            openai_chat=False,
            unsupported_reason="vertex_ai needs Google Cloud credentials: not automatic",
        ),
    ]
}

# LiteLLM infers a provider from bare model names; the common cases.
_INFER_PREFIXES = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("deepseek", "deepseek"),
    ("gemini", "gemini"),
    ("claude", "anthropic"),
    ("mistral", "mistral"),
    ("codestral", "mistral"),
    ("grok", "xai"),
    ("voyage", "voyage"),
)


def split_model(model: str) -> tuple[str | None, str]:
    """``deepseek/deepseek-reasoner`` -> (``deepseek``, ``deepseek-reasoner``)."""
    head, sep, tail = model.partition("/")
    if sep and head in PROVIDERS:
        return head, tail
    if sep and head:
        return head, tail
    return None, model


def infer_provider(model_id: str) -> str | None:
    lower = model_id.lower()
    for prefix, provider in _INFER_PREFIXES:
        if lower.startswith(prefix):
            return provider
    return None
