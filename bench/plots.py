"""The plots of ``docs/``, drawn from result files only (``python -m bench.report`` calls :func:`draw`)."""
from __future__ import annotations

from pathlib import Path

from bench.results import read_result

#: plot name -> (title, the result files it is drawn from)
PLOTS = {
    "frontier": ("fine-tuning frontier", ("frontier",)),
    "flops_vs_ndcg": ("nDCG@10 against FLOPS", ("lambda-sweep",)),
}


def _number(cell) -> float:
    return float(str(cell).split()[0].replace(",", ""))


def _columns(record: dict) -> list[dict]:
    return [dict(zip(record["columns"], row)) for row in record["rows"]]


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.6))


def _frontier(results: Path, ax_pair) -> str:
    rows = _columns(read_result(results / "frontier.json"))
    ax1, ax2 = ax_pair
    for r in rows:
        base = r["setting"].startswith("untuned")
        style = dict(marker="*" if base else "o", s=140 if base else 50, color="black" if base else None, zorder=3)
        scifact, cacm = _number(r["SciFact test nDCG@10"]), _number(r["CACM nDCG@10"])
        flops, nnz = _number(r["SciFact FLOPS"]), _number(r["SciFact doc nnz"])
        ax1.scatter(scifact, cacm, **style)
        ax1.annotate(r["setting"], (scifact, cacm), textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax2.scatter(flops, scifact, **style)
        ax2.annotate(f"{r['setting']} ({nnz:.0f} nnz)", (flops, scifact), textcoords="offset points",
                     xytext=(5, 3), fontsize=7)
        if base:
            ax1.axhline(cacm, color="grey", ls="--", lw=0.8)
    ax1.set(xlabel="SciFact test nDCG@10 (in domain)", ylabel="CACM nDCG@10 (out of domain)",
            title="gain in domain vs forgetting out of domain")
    ax2.set(xlabel="FLOPS (SciFact, x100 impacts)", ylabel="SciFact test nDCG@10", title="effectiveness vs FLOPS")
    return "splade-tiny fine-tuned on SciFact train: the levers alone and combined (exact x100 retrieval)"


def _flops_vs_ndcg(results: Path, ax) -> str:
    rows = _columns(read_result(results / "lambda-sweep.json"))
    key = next(c for c in rows[0] if c.startswith("λd"))
    for r in rows:
        base = r[key].startswith("splade-tiny")
        flops, ndcg = _number(r["FLOPS"]), _number(r["SciFact nDCG@10"])
        label = f"start ({_number(r['doc nnz']):.0f} nnz/doc)" if base else f"λd={r[key]} ({_number(r['doc nnz']):.0f} nnz/doc)"
        ax.plot([flops], [ndcg], "s" if base else "o", color="tab:gray" if base else "tab:blue")
        ax.annotate(label, (flops, ndcg), textcoords="offset points", xytext=(6, -4), fontsize=8)
    ax.set(xlabel="FLOPS (expected multiplications per query-document pair)", ylabel="SciFact nDCG@10",
           title="Effectiveness vs FLOPS (SPLADE v2, Fig. 1 style)")
    return ""


def draw(name: str, results: Path, out_dir: Path) -> Path:
    """Draw plot ``name`` from the result files in ``results`` into ``out_dir/name.png``."""
    fig, axes = _figure(2 if name == "frontier" else 1)
    title = (_frontier if name == "frontier" else _flops_vs_ndcg)(Path(results), axes)
    for ax in (axes if name == "frontier" else [axes]):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=130, metadata={"Software": None})
    return path
