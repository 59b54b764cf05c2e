"""A self-contained rehearsal environment: a wire-protocol MongoDB server
(SecantusDB, as a separate process), realistic Layra data, a realistic LiteLLM
config, and an OpenAI-compatible provider stub. Used by the Quick start, the
test suite and the benchmarks; an operator can point it at a restored dump."""
