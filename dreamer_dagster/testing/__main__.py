"""``python -m dreamer_dagster.testing [--port 0] [--latency S] ...``: serve the loopback
OpenAI-compatible server until interrupted (prints ``READY <base_url>`` once listening)."""

from .openai_server import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
