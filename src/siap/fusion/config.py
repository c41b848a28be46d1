"""Configuration of the coalition track-to-track fuser (:class:`siap.fusion.TrackFuser`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2

__all__ = ["FusionConfig"]


class FusionConfig(BaseModel):
    """Parameters of track-to-track association and fusion. Every field has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_probability: float = Field(
        0.999,
        gt=0.0,
        lt=1.0,
        description="Probability that two local tracks of the same object pass the pairwise "
        "chi-square gate; the threshold is chi2.ppf(gate_probability, dof).",
    )
    gate_chi2: float | None = Field(
        None,
        gt=0.0,
        description="Explicit chi-square gate threshold; overrides gate_probability when set.",
    )
    gate_on_velocity: bool = Field(
        False,
        description="Test position and velocity (6 dof) instead of position only (3 dof).",
    )
    associate_after: int = Field(
        2,
        ge=1,
        description="Consecutive passed pairwise tests before two fused tracks are merged.",
    )
    dissociate_after: int = Field(
        3,
        ge=1,
        description="Consecutive failed pairwise tests before a contributor leaves its fused track.",
    )
    max_age_s: float = Field(
        20.0,
        gt=0.0,
        description="A local track not refreshed for longer than this (s) is dropped.",
    )
    process_noise_mps2: float = Field(
        5.0,
        ge=0.0,
        description="Standard deviation of the white acceleration (m/s^2) of the discrete white "
        "noise acceleration model used to predict local tracks to the fusion time.",
    )
    source_id_bits: int | None = Field(
        None,
        ge=1,
        le=40,
        description="If set, a partner's local tracks come from several sources (trackers) told "
        "apart by track_id >> source_id_bits; tracks of one partner and one source are never "
        "associated with each other, tracks of different sources of one partner may be. "
        "None: each partner is one source.",
    )
    method: Literal["imf", "ci", "naive"] = Field(
        "imf",
        description="'imf': information matrix fusion with memory (default): each fused track "
        "is kept in information form and every contributor adds only the information it "
        "gained since its last report (decorrelated, no double counting; needs contributors "
        "built from disjoint data, as siap's local trackers are); 'ci': covariance "
        "intersection with fast weights (consistent under any unknown cross-correlation, "
        "conservative); 'naive': information sum of the current states, assuming "
        "independence (overconfident; for comparison only).",
    )

    @property
    def gate_dof(self) -> int:
        return 6 if self.gate_on_velocity else 3

    @property
    def gate_threshold(self) -> float:
        """The chi-square threshold actually used by the gate."""
        if self.gate_chi2 is not None:
            return float(self.gate_chi2)
        return float(chi2.ppf(self.gate_probability, self.gate_dof))
