"""``make demo``: the main job end to end on the embedded default.

For now: the seed's model counted under every convention (``mfubench flops``).
"""

from __future__ import annotations

from mfubench.cli import main as cli


def main() -> int:
    model = "meta-llama/Llama-3.3-70B-Instruct"
    for convention in ("causal", "palm"):
        code = cli(["flops", model, "--input-tokens", "2048", "--output-tokens", "900",
                    "--tp", "4", "--convention", convention])
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
