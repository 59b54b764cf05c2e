"""A realistic LiteLLM proxy config (thesis deployment shape) written to disk.

It exercises what real configs hold: ``include:``, ``os.environ/`` references,
default key variables, a ``model_group_alias``, wildcards, a load-balanced group,
embedding and rerank entries, an anthropic entry, fallbacks, ``drop_params``.
"""

from __future__ import annotations

from pathlib import Path

MAIN = """\
# LiteLLM proxy config of the thesis deployment (shape of /LAB/@litellm/config.yaml)
include:
  - models/embeddings.yaml

model_list:
  - model_name: deepseek-reasoner
    litellm_params:
      model: deepseek/deepseek-reasoner
      api_key: os.environ/DEEPSEEK_API_KEY{deepseek_base}
  - model_name: deepseek-chat
    litellm_params:
      model: deepseek/deepseek-chat{deepseek_base}
  - model_name: gemini-2.5-flash
    litellm_params:
      model: {gemini_model}
      api_key: os.environ/GEMINI_API_KEY{gemini_base}
  - model_name: kimi-k2
    litellm_params:
      model: ollama_chat/kimi-k2:1t
      api_base: {ollama_base}
      api_key: os.environ/OLLAMA_API_KEY
  - model_name: gpt-oss-120b
    litellm_params:
      model: ollama_chat/gpt-oss:120b
      api_base: {ollama_base}
      api_key: os.environ/OLLAMA_API_KEY
  - model_name: gpt-oss-120b
    litellm_params:
      model: openai/gpt-oss-120b
      api_base: os.environ/VLLM_API_BASE
      api_key: os.environ/VLLM_API_KEY
  - model_name: claude-sonnet-4
    litellm_params:
      model: anthropic/claude-sonnet-4-20250514
      api_key: os.environ/ANTHROPIC_API_KEY
  - model_name: "openai/*"
    litellm_params:
      model: "openai/*"
      api_key: os.environ/OPENAI_API_KEY{openai_base}

router_settings:
  routing_strategy: simple-shuffle
  model_group_alias:
    thesis-default: deepseek-reasoner
  fallbacks:
    - deepseek-reasoner: ["deepseek-chat"]
  redis_host: litellm-redis
  redis_port: 6379

litellm_settings:
  drop_params: true
  cache: true
  request_timeout: 600

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
"""

EMBEDDINGS = """\
model_list:
  - model_name: voyage-3
    litellm_params:
      model: voyage/voyage-3
      api_key: os.environ/VOYAGE_API_KEY
    model_info:
      mode: embedding
  - model_name: rerank-english
    litellm_params:
      model: cohere/rerank-english-v3.0
    model_info:
      mode: rerank
"""


def write_litellm_config(folder: Path, provider_base: str | None = None) -> Path:
    """Write config.yaml (+ models/embeddings.yaml) and return its path.

    ``provider_base``: when given (the root URL of the sandbox's provider stub,
    without ``/v1``), every chat route gets it as ``api_base``, standing in for
    the real providers (``<root>/v1`` for OpenAI-style routes, ``<root>`` for
    Ollama routes, as LiteLLM configs spell them). The stub speaks only the OpenAI
    protocol, while LiteLLM's ``gemini/`` provider calls Gemini's native API at its
    api_base; so with a stub the Gemini route is spelled ``openai/gemini-2.5-flash``
    (an OpenAI-compatible server at api_base), which is what LiteLLM would really call.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)

    def base(url: str | None) -> str:
        return f"\n      api_base: {url}" if url else ""

    openai_style = f"{provider_base.rstrip('/')}/v1" if provider_base else None
    text = MAIN.format(
        deepseek_base=base(openai_style),
        gemini_base=base(openai_style),
        gemini_model="openai/gemini-2.5-flash" if provider_base else "gemini/gemini-2.5-flash",
        openai_base=base(openai_style),
        ollama_base=provider_base or "https://ollama.com",
    )
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    (folder / "models" / "embeddings.yaml").write_text(EMBEDDINGS, encoding="utf-8")
    return path
