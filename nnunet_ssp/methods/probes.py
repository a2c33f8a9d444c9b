"""Cheap per-epoch signals of what an encoder has learned, computed from its embeddings."""

from typing import Dict, Sequence

import torch
import torch.nn.functional as F


def embedding_spread(z: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation across samples of the L2-normalised embeddings z (N x D).

    About 0 means collapse (every sample maps to the same direction); embeddings spread uniformly over the unit
    sphere give about 1/sqrt(D), since each coordinate of a random unit vector has variance 1/D.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embedding spread needs an N x D matrix with at least two samples, got {tuple(z.shape)}.")
    return F.normalize(z.detach().float(), dim=1).std(dim=0).mean().item()


def knn_accuracy(train_z: torch.Tensor, train_labels: torch.Tensor, test_z: torch.Tensor, test_labels: torch.Tensor,
                 k: int = 5) -> float:
    """Fraction of test embeddings whose label is the majority label of their k most cosine-similar train embeddings.

    Labels are non-negative integers (for example slice-position bins); a tie goes to the smallest tied label.
    """
    if train_z.ndim != 2 or test_z.ndim != 2 or train_z.shape[1] != test_z.shape[1]:
        raise ValueError(f"train and test embeddings must be N x D matrices of the same D, "
                         f"got {tuple(train_z.shape)} and {tuple(test_z.shape)}.")
    if train_labels.shape != train_z.shape[:1] or test_labels.shape != test_z.shape[:1]:
        raise ValueError("there must be exactly one label per embedding.")
    if min(train_labels.min(), test_labels.min()) < 0:
        raise ValueError("labels must be non-negative integers.")
    if not 1 <= k <= train_z.shape[0]:
        raise ValueError(f"k must lie between 1 and the number of train embeddings ({train_z.shape[0]}), got {k}.")
    similarity = F.normalize(test_z.detach().float(), dim=1) @ F.normalize(train_z.detach().float(), dim=1).T
    neighbour_labels = train_labels[similarity.topk(k, dim=1).indices]
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    votes = F.one_hot(neighbour_labels.long(), n_classes).sum(dim=1)
    return (votes.argmax(dim=1) == test_labels).float().mean().item()


def position_bins(positions: torch.Tensor, num_bins: int = 5) -> torch.Tensor:
    """Base-to-apex bin (0 = basal) of normalised slice positions in [0, 1]."""
    return (positions * num_bins).long().clamp(0, num_bins - 1)


def encoder_probes(method_z: torch.Tensor, encoder_z: torch.Tensor, positions: torch.Tensor,
                   subjects: Sequence[str], k: int = 5) -> Dict[str, float]:
    """Spread of the method's embeddings, and kNN accuracy of position bins on encoder features across subjects.

    Subjects are split alternately (sorted) into a neighbour bank and queries, so a query never finds another view
    of its own slice. The kNN accuracy is NaN when fewer than two subjects or too few bank samples are present.
    """
    signals = {"embedding_spread": embedding_spread(method_z) if method_z.shape[0] > 1 else float("nan"),
               "position_knn_accuracy": float("nan")}
    bank_subjects = set(sorted(set(subjects))[::2])
    in_bank = torch.tensor([s in bank_subjects for s in subjects])
    if in_bank.all() or not in_bank.any() or int(in_bank.sum()) < k:
        return signals
    bins = position_bins(positions)
    signals["position_knn_accuracy"] = knn_accuracy(encoder_z[in_bank], bins[in_bank], encoder_z[~in_bank],
                                                    bins[~in_bank], k)
    return signals
