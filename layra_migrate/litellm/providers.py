"""Provider catalog: direct OpenAI-compatible base URL and default key variable.

Source: LiteLLM's provider docs and each provider's OpenAI-compatibility docs
(see docs/MIGRATION.md, "Provider table").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str | None  # direct OpenAI-compatible base; None: needs the entry's api_base
    key_envs: tuple[str, ...]  # the first is the one to recommend when none is set
    openai_chat: bool = True
    unsupported_reason: str | None = None
    key_required: bool = True
    # the variables LiteLLM itself reads for the key, in its order (first set wins);
    # empty: same as key_envs
    litellm_key_order: tuple[str, ...] = ()
    # the variables LiteLLM reads for the base URL when a route sets no api_base
    base_envs: tuple[str, ...] = ()
    # the base URL LiteLLM calls when neither the route nor its environment sets one
    litellm_default_base: str | None = None

    @property
    def key_read_order(self) -> tuple[str, ...]:
        return self.litellm_key_order or self.key_envs


_UNSUPPORTED_ANTHROPIC = (
    "anthropic speaks its native Messages API; its OpenAI layer is not for production"
)

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider(
            "openai",
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            base_envs=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
            litellm_default_base="https://api.openai.com",
        ),
        Provider(
            "deepseek",
            "https://api.deepseek.com",
            ("DEEPSEEK_API_KEY",),
            base_envs=("DEEPSEEK_API_BASE",),
            litellm_default_base="https://api.deepseek.com/beta",
        ),
        Provider(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            litellm_key_order=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
            base_envs=("GEMINI_API_BASE",),
            litellm_default_base="https://generativelanguage.googleapis.com",
        ),
        Provider(
            "ollama_chat",
            "http://localhost:11434/v1",
            ("OLLAMA_API_KEY",),
            key_required=False,
            base_envs=("OLLAMA_API_BASE",),
            litellm_default_base="http://localhost:11434",
        ),
        Provider(
            "ollama",
            "http://localhost:11434/v1",
            ("OLLAMA_API_KEY",),
            key_required=False,
            base_envs=("OLLAMA_API_BASE",),
            litellm_default_base="http://localhost:11434",
        ),
        Provider(
            "groq",
            "https://api.groq.com/openai/v1",
            ("GROQ_API_KEY",),
            base_envs=("GROQ_API_BASE",),
            litellm_default_base="https://api.groq.com/openai/v1",
        ),
        Provider(
            "mistral",
            "https://api.mistral.ai/v1",
            ("MISTRAL_API_KEY",),
            litellm_default_base="https://api.mistral.ai/v1",
        ),
        Provider(
            "openrouter",
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            base_envs=("OPENROUTER_API_BASE",),
            litellm_default_base="https://openrouter.ai/api/v1",
        ),
        Provider(
            "together_ai",
            "https://api.together.ai/v1",
            ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
            litellm_key_order=(
                "TOGETHER_API_KEY",
                "TOGETHER_AI_API_KEY",
                "TOGETHERAI_API_KEY",
                "TOGETHER_AI_TOKEN",
            ),
            base_envs=("TOGETHER_AI_API_BASE",),
            litellm_default_base="https://api.together.ai/v1",
        ),
        Provider(
            "xai",
            "https://api.x.ai/v1",
            ("XAI_API_KEY",),
            base_envs=("XAI_API_BASE",),
            litellm_default_base="https://api.x.ai/v1",
        ),
        Provider(
            "hosted_vllm",
            None,
            ("HOSTED_VLLM_API_KEY",),
            key_required=False,
            base_envs=("HOSTED_VLLM_API_BASE",),
        ),
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


def split_model(model: str) -> tuple[str | None, str]:
    """``deepseek/deepseek-reasoner`` -> (``deepseek``, ``deepseek-reasoner``)."""
    head, sep, tail = model.partition("/")
    if sep and head:
        return head, tail
    return None, model


def direct_base_url(provider: str, litellm_base: str) -> tuple[str | None, str | None]:
    """The OpenAI-compatible base a direct call must use for the base LiteLLM calls.

    Returns (base, None) or (None, reason). This is the one table that maps LiteLLM's
    native endpoints to OpenAI-compatible ones (docs/MIGRATION.md, "Base URLs"):

    - ``ollama``/``ollama_chat``: LiteLLM calls Ollama's native API at ``<base>``;
      the OpenAI-compatible API is ``<base>/v1``.
    - ``gemini``: LiteLLM calls the native Gemini API at
      ``generativelanguage.googleapis.com``; the OpenAI-compatible layer is
      ``.../v1beta/openai/``. Any other Gemini base (a gateway) has no known
      OpenAI-compatible path: refused.
    - ``deepseek``: LiteLLM's default is ``https://api.deepseek.com/beta``; the
      documented OpenAI-compatible base is ``https://api.deepseek.com``.
    - ``openai``: LiteLLM's default ``https://api.openai.com`` is ``.../v1`` for the SDK.
    - everything else: LiteLLM already calls an OpenAI-compatible base; used as is.
    """
    base = litellm_base.strip()
    trimmed = base.rstrip("/")
    if provider in ("ollama", "ollama_chat"):
        return (trimmed if trimmed.endswith("/v1") else trimmed + "/v1"), None
    if provider == "gemini":
        if trimmed in ("https://generativelanguage.googleapis.com",):
            return PROVIDERS["gemini"].base_url, None
        if "generativelanguage.googleapis.com" in trimmed and trimmed.endswith("/openai"):
            return trimmed + "/", None
        return None, (
            f"the proxy calls Gemini's native API at {base}; its OpenAI-compatible path is "
            "unknown: set base_url in the plan"
        )
    if provider == "deepseek" and trimmed == "https://api.deepseek.com/beta":
        return PROVIDERS["deepseek"].base_url, None
    if provider == "openai" and trimmed == "https://api.openai.com":
        return PROVIDERS["openai"].base_url, None
    return base, None
