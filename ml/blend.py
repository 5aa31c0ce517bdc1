"""A learned, calibrated blend of the audio model with artist and title evidence.

The blend is a conditional logit (multinomial logistic regression whose coefficients are shared by the
classes): for a song x and each genre c,

    score(x, c) = Σ_f w_f · φ_f(x, c) + b_c,        P(c | x) = softmax_c score(x, c)

where φ are per-class evidence features (`blend_features`): the audio model's calibrated log-probability
(with separate weights when the artist is known or not), the artist's leave-group-out genre counts turned
into a smoothed log-likelihood ratio, a share, a top-genre flag and a family share, and naive-Bayes scores
of the artist-name and title tokens (`ml.evidence`). Sharing coefficients over 114 classes keeps the
model to a few dozen numbers, so it is fitted on the validation groups alone (the audio model's
probabilities there are out of sample) and cross-fitted there for every choice; its log-loss objective
is the evaluation's own ("−log of the probability of any of the song's labels"), so the output is
calibrated by construction (the reliability plot in the report checks it).

Heads (each its own fitted weights): "audio+artist" reads the audio and artist features,
"audio+artist+title" adds the title features. "audio" is the audio model alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEAD_AUDIO = "audio"
HEAD_ARTIST = "audio+artist"
HEAD_TITLE = "audio+artist+title"
META_HEADS: tuple[str, ...] = (HEAD_ARTIST, HEAD_TITLE)

ARTIST_FEATURES: tuple[str, ...] = (
    "audio_logp_known",  # log p_audio(c) when an artist has catalogue songs
    "audio_logp_unknown",  # … when none has
    "artist_llr",  # log((n_c + α·π_c) / (N + α)) − log π_c
    "artist_share",  # n_c / N
    "artist_top",  # c is the artist's most frequent genre
    "artist_family_share",  # share of the artist's counts in c's family
    "artist_share_x_logn",  # n_c / N · log(1 + N)
    "artist_name_nb",  # naive-Bayes score of the artist-name tokens (mean over known tokens)
)
TITLE_FEATURES: tuple[str, ...] = ("title_nb", "title_nb_known_artist")
HEAD_FEATURES: dict[str, tuple[str, ...]] = {
    HEAD_ARTIST: ARTIST_FEATURES,
    HEAD_TITLE: ARTIST_FEATURES + TITLE_FEATURES,
}


@dataclass(frozen=True)
class Evidence:
    """Raw evidence for n songs (all (n, classes) except the counts of known tokens)."""

    artist_counts: np.ndarray
    name_nb: np.ndarray
    name_known: np.ndarray
    title_nb: np.ndarray
    title_known: np.ndarray

    def take(self, rows: np.ndarray) -> Evidence:
        return Evidence(
            self.artist_counts[rows],
            self.name_nb[rows],
            self.name_known[rows],
            self.title_nb[rows],
            self.title_known[rows],
        )


def _columns(
    audio: np.ndarray, ev: Evidence, prior: np.ndarray, family_matrix: np.ndarray, names: Sequence[str], alpha: float
) -> Iterator[np.ndarray]:
    """Each named feature as an (n, classes) array (or one broadcastable to it), in `names` order."""
    n = audio.shape[0]
    logp = np.log(np.clip(audio, 1e-9, 1.0))
    counts = ev.artist_counts
    total = counts.sum(axis=1, keepdims=True)
    known = total > 0
    share = np.divide(counts, total, out=np.zeros_like(counts), where=known)
    for name in names:
        if name == "audio_logp_known":
            yield logp * known
        elif name == "audio_logp_unknown":
            yield logp * ~known
        elif name == "artist_llr":
            yield np.where(known, np.log(counts + alpha * prior) - np.log(total + alpha) - np.log(prior), 0.0)
        elif name == "artist_share":
            yield share
        elif name == "artist_top":
            top = np.zeros_like(counts)
            top[np.arange(n), counts.argmax(axis=1)] = 1.0
            yield top * known
        elif name == "artist_family_share":
            yield (share @ family_matrix) @ family_matrix.T
        elif name == "artist_share_x_logn":
            yield share * np.log1p(total)
        elif name == "artist_name_nb":
            yield ev.name_nb / np.maximum(ev.name_known, 1.0)[:, None]
        elif name == "title_nb":
            yield ev.title_nb / np.maximum(ev.title_known, 1.0)[:, None]
        elif name == "title_nb_known_artist":
            yield ev.title_nb / np.maximum(ev.title_known, 1.0)[:, None] * known
        else:
            raise ValueError(f"unknown blend feature {name!r}")


def blend_features(
    audio: np.ndarray, ev: Evidence, prior: np.ndarray, family_matrix: np.ndarray, names: Sequence[str], alpha: float
) -> np.ndarray:
    """(n, classes, len(names)) feature tensor for the conditional logit (training)."""
    shape = audio.shape
    cols = [np.broadcast_to(c, shape) for c in _columns(audio, ev, prior, family_matrix, names, alpha)]
    return np.stack(cols, axis=2)


def blend_proba(
    audio: np.ndarray,
    ev: Evidence,
    prior: np.ndarray,
    family_matrix: np.ndarray,
    names: Sequence[str],
    alpha: float,
    logit: ConditionalLogit,
) -> np.ndarray:
    """The same probabilities as `logit.predict_proba(blend_features(...))`, without building the tensor
    (serving: one song costs a few small array operations)."""
    s = np.zeros(audio.shape) + logit.bias
    for w, col in zip(logit.weights, _columns(audio, ev, prior, family_matrix, names, alpha), strict=True):
        s += w * col
    s -= s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class ConditionalLogit:
    """softmax_c(φ(x, c)·w + b_c), fitted by L-BFGS on the any-label log-loss with an L2 penalty."""

    l2: float = 1e-3
    l2_bias: float = 1e-2
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, phi: np.ndarray, target: np.ndarray, max_iter: int = 300) -> ConditionalLogit:
        """phi: (n, classes, features); target: (n, classes) bool, True for each of the song's labels."""
        n, k, f = phi.shape
        mask = target.astype(bool)
        if not mask.any(axis=1).all():
            raise ValueError("every training song needs at least one label among the classes")

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:f], theta[f:]
            s = phi @ w + b
            s -= s.max(axis=1, keepdims=True)
            e = np.exp(s)
            z = e.sum(axis=1)
            ey = np.where(mask, e, 0.0)
            zy = ey.sum(axis=1)
            loss = float(np.mean(np.log(z) - np.log(zy)))
            p = e / z[:, None]
            q = ey / zy[:, None]
            diff = p - q
            gw = np.einsum("nk,nkf->f", diff, phi) / n
            gb = diff.mean(axis=0)
            loss += 0.5 * self.l2 * float(w @ w) + 0.5 * self.l2_bias * float(b @ b)
            return loss, np.concatenate([gw + self.l2 * w, gb + self.l2_bias * b])

        theta0 = np.zeros(f + k)
        from scipy.optimize import minimize  # fitting only: not loaded with the model

        result = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        self.weights, self.bias = result.x[:f].copy(), result.x[f:].copy()
        return self

    def predict_proba(self, phi: np.ndarray) -> np.ndarray:
        s = phi @ self.weights + self.bias
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {"l2": self.l2, "l2_bias": self.l2_bias, "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionalLogit:
        return cls(
            float(data["l2"]),
            float(data["l2_bias"]),
            np.asarray(data["weights"], dtype=np.float64),
            np.asarray(data["bias"], dtype=np.float64),
        )


def label_mask(label_sets: Sequence[frozenset[str]], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    mask = np.zeros((len(label_sets), len(classes)), dtype=bool)
    for i, s in enumerate(label_sets):
        for c in s:
            if c in index:
                mask[i, index[c]] = True
    return mask
