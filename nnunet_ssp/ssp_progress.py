"""`ssp_progress.png`: SSP losses and the encoder probes per epoch, beside nnU-Net's own `progress.png`."""

from typing import Dict, List

from nnunet_ssp.atomic import atomic_path

PROBE_TITLES = {
    "val_embedding_spread": "embedding spread (0 = collapse)",
    "val_position_knn_accuracy": "kNN accuracy of base-to-apex position bins (5 bins, chance 0.2)",
}


def plot_ssp_progress(train_losses: List[float], val_losses: List[float], history: Dict[str, List[float]],
                      filename: str) -> None:
    """Write losses and probe signals per epoch to `filename` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = [k for k in PROBE_TITLES if history.get(k)]
    fig, axes = plt.subplots(1 + len(probes), 1, figsize=(8, 3 * (1 + len(probes))), squeeze=False)
    axes[0, 0].plot(train_losses, label="SSP train loss")
    axes[0, 0].plot(val_losses, label="SSP validation loss")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend()
    for ax, key in zip(axes[1:, 0], probes):
        ax.plot(history[key], marker=".")
        ax.set_title(PROBE_TITLES[key], fontsize=10)
    axes[-1, 0].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(filename) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
