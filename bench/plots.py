"""The plots of ``docs/``, drawn from result files only (``python -m bench.report`` calls :func:`draw`)."""
from __future__ import annotations

from pathlib import Path

from bench.results import read_result

#: plot name -> (title, the result files it is drawn from)
PLOTS = {
    "frontier": ("fine-tuning frontier", ("frontier",)),
    "flops_vs_ndcg": ("nDCG@10 against FLOPS", ("lambda-sweep",)),
    "adaptation": ("adaptation without labels, then with", ("adaptation",)),
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


def _scatter_pair(rows: list[dict], ax_pair, name: str, sci: str, cacm: str, flops: str, nnz: str,
                  numbered: bool = False) -> None:
    """SciFact against CACM (forgetting) and FLOPS against SciFact, one point per row, the untuned model starred;
    ``numbered``: points carry their row number, the names go to a legend (long names)."""
    ax1, ax2 = ax_pair
    for i, r in enumerate(rows, 1):
        base = r[name].startswith("untuned")
        style = dict(marker="*" if base else "o", s=140 if base else 50, color="black" if base else None, zorder=3)
        x, y = _number(r[sci]), _number(r[cacm])
        f, n = _number(r[flops]), _number(r[nnz])
        tag = str(i) if numbered else r[name]
        ax1.scatter(x, y, label=f"{i}. {r[name]}" if numbered else None, **style)
        ax1.annotate(tag, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax2.scatter(f, x, **style)
        ax2.annotate(f"{tag} ({n:.0f} nnz)", (f, x), textcoords="offset points", xytext=(5, 3), fontsize=7)
        if base:
            ax1.axhline(y, color="grey", ls="--", lw=0.8)
    ax1.set(xlabel="SciFact test nDCG@10 (in domain)", ylabel="CACM nDCG@10 (out of domain)",
            title="gain in domain vs forgetting out of domain")
    ax2.set(xlabel="FLOPS (SciFact, x100 impacts)", ylabel="SciFact test nDCG@10", title="effectiveness vs FLOPS")


def _frontier(results: Path, ax_pair) -> str:
    rows = _columns(read_result(results / "frontier.json"))
    _scatter_pair(rows, ax_pair, "setting", "SciFact test nDCG@10", "CACM nDCG@10", "SciFact FLOPS", "SciFact doc nnz")
    return "splade-tiny fine-tuned on SciFact train: the levers alone and combined (exact x100 retrieval)"


def _adaptation(results: Path, ax_pair) -> str:
    rows = _columns(read_result(results / "adaptation.json"))
    _scatter_pair(rows, ax_pair, "model", "SciFact test", "CACM", "SciFact FLOPS", "SciFact doc non-zeros", numbered=True)
    ax_pair[0].figure.legend(loc="lower center", ncol=2, fontsize=6.5, frameon=False)
    ax_pair[0].figure.subplots_adjust(bottom=0.3)
    return "splade-tiny adapted to a corpus without labels, and fine-tuned with labels (exact x100 retrieval)"


def _flops_vs_ndcg(results: Path, ax) -> str:
    rows = _columns(read_result(results / "lambda-sweep.json"))
    key = next(c for c in rows[0] if c.startswith("λd"))
    for r in (r for r in rows if "seed" not in r[key]):  # one point a value: its mean over the seeds
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
    pair = name in ("frontier", "adaptation")
    fig, axes = _figure(2 if pair else 1)
    title = {"frontier": _frontier, "adaptation": _adaptation, "flops_vs_ndcg": _flops_vs_ndcg}[name](Path(results), axes)
    for ax in (axes if pair else [axes]):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.22, 1, 1) if name == "adaptation" else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=130, metadata={"Software": None})
    return path
