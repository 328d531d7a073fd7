"""Weight-space interpolation of a fine-tuned checkpoint with its starting model (WiSE-FT).

    python -m splade_anserini.train.interpolate --base splade-tiny --model OUT/checkpoint-best \\
        --alpha 0.5 --output OUT/wise-0.5

``theta = (1 - alpha) * theta_base + alpha * theta_finetuned`` for every floating-point weight
(Wortsman et al., "Robust fine-tuning of zero-shot models", 2022): fine-tuning moves a model toward
the target domain, and the straight line back to its start trades in-domain gains for the
out-of-domain behaviour the start had, usually with a better frontier than stopping early. The
result is an ordinary checkpoint (written atomically) that every tool loads unchanged.
"""
from __future__ import annotations

import sys

from splade_anserini.cli import ArgumentParser, command


def interpolate(base: str, model: str, alpha: float, output: str) -> str:
    from splade_anserini.models import load_model
    from splade_anserini.train.checkpoint import read_info, write_checkpoint

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    _, start = load_model(base)
    tokenizer, tuned = load_model(model)
    start_state = start.state_dict()
    state = tuned.state_dict()
    if set(start_state) != set(state):
        raise ValueError(f"{base} and {model} have different parameters: not the same architecture")
    done: set[int] = set()
    for name, value in state.items():
        # Tied weights (MLM decoder = word embeddings) share storage: interpolate each tensor once.
        if value.is_floating_point() and value.data_ptr() not in done:
            done.add(value.data_ptr())
            if value.shape != start_state[name].shape:
                raise ValueError(f"{name}: shape {tuple(value.shape)} in {model}, {tuple(start_state[name].shape)} in {base}")
            value.copy_(start_state[name].lerp(value, alpha))
    from pathlib import Path

    out = Path(output)
    info = dict(read_info(model), interpolated={"base": base, "model": model, "alpha": alpha})
    return str(write_checkpoint(out.parent, out.name, tuned, tokenizer, info))


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="WiSE-FT: interpolate a fine-tuned checkpoint with its starting model.")
    parser.add_argument("--base", default="splade-tiny", help="the starting model")
    parser.add_argument("--model", required=True, help="the fine-tuned checkpoint")
    parser.add_argument("--alpha", type=float, required=True, help="0 = base, 1 = fine-tuned")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    print(interpolate(args.base, args.model, args.alpha, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
