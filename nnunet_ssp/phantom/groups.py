"""The five diagnostic groups of ACDC and the ranges their hearts are drawn from (mm, fractions, degrees)."""

from dataclasses import dataclass
from typing import Dict, Tuple

Range = Tuple[float, float]


@dataclass(frozen=True)
class GroupProfile:
    """Uniform ranges for one group's end-diastolic shape and its contraction, for a body of average size."""
    name: str
    description: str
    lv_length: Range            # LV epicardial length, base plane to apex
    lv_endo_radius: Range       # LV cavity radius at the base plane
    wall_base: Range            # LV wall thickness at the base
    apical_cap: Range           # wall thickness at the apex (thin)
    taper: Range                # exponent k of r(u) = R * sqrt(1 - (u / L)^k); larger is blunter, more spherical
    septal_thickening: Range    # extra relative thickness of the septum (asymmetric hypertrophy)
    radial_shortening: Range    # fraction by which the cavity radius shrinks from ED to ES
    long_shortening: Range      # fraction of the LV length by which the base descends at ES
    rv_width: Range             # RV cavity width at the septum centre, base
    rv_wrap_deg: Range          # half-angle around the LV covered by the RV crescent
    rv_shortening: Range        # fraction by which the RV width shrinks at ES
    infarct: bool = False       # a thinned, akinetic wall segment


GROUPS: Dict[str, GroupProfile] = {
    "NOR": GroupProfile(
        "NOR", "normal",
        lv_length=(82, 98), lv_endo_radius=(21, 25.5), wall_base=(7, 9.5), apical_cap=(3, 5), taper=(1.8, 2.3),
        septal_thickening=(0.0, 0.1), radial_shortening=(0.29, 0.38), long_shortening=(0.12, 0.17),
        rv_width=(17, 25), rv_wrap_deg=(58, 72), rv_shortening=(0.3, 0.42)),
    "DCM": GroupProfile(
        "DCM", "dilated: large LV, thin wall, weak contraction",
        lv_length=(95, 115), lv_endo_radius=(29, 36), wall_base=(5, 7), apical_cap=(2.5, 4), taper=(2.3, 3.2),
        septal_thickening=(0.0, 0.05), radial_shortening=(0.05, 0.14), long_shortening=(0.03, 0.07),
        rv_width=(15, 24), rv_wrap_deg=(55, 70), rv_shortening=(0.18, 0.32)),
    "HCM": GroupProfile(
        "HCM", "hypertrophic: thick wall, small cavity",
        lv_length=(76, 92), lv_endo_radius=(15, 20), wall_base=(12, 17), apical_cap=(5, 9), taper=(1.8, 2.3),
        septal_thickening=(0.2, 0.7), radial_shortening=(0.4, 0.55), long_shortening=(0.1, 0.15),
        rv_width=(15, 22), rv_wrap_deg=(55, 70), rv_shortening=(0.3, 0.42)),
    "MINF": GroupProfile(
        "MINF", "infarct: a thinned, akinetic wall segment, mild dilation",
        lv_length=(88, 106), lv_endo_radius=(25, 31), wall_base=(7, 9), apical_cap=(2.5, 4), taper=(2.0, 2.6),
        septal_thickening=(0.0, 0.1), radial_shortening=(0.14, 0.25), long_shortening=(0.07, 0.12),
        rv_width=(16, 24), rv_wrap_deg=(56, 70), rv_shortening=(0.25, 0.38), infarct=True),
    "RV": GroupProfile(
        "RV", "abnormal right ventricle: dilated, weakly contracting RV",
        lv_length=(80, 95), lv_endo_radius=(19, 24), wall_base=(6.5, 9), apical_cap=(3, 5), taper=(1.8, 2.3),
        septal_thickening=(0.0, 0.1), radial_shortening=(0.26, 0.36), long_shortening=(0.1, 0.15),
        rv_width=(32, 46), rv_wrap_deg=(72, 92), rv_shortening=(0.1, 0.22)),
}

GROUP_NAMES = tuple(GROUPS)
