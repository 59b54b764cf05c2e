"""A self-contained rehearsal environment: a wire-protocol MongoDB server
(SecantusDB, as a separate process), realistic Layra data, a realistic LiteLLM
config, an OpenAI-compatible provider stub, and a fake LiteLLM stack for a real
Docker engine (docker_stack.py). Used by the Quick start, the test suite and the
benchmarks; an operator can point it at a restored dump."""
