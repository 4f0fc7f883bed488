"""Test-time stressors (paper App. C.2, DESIGN §5) as one fixed, seeded plan per dataset, shared by every model.

    plan = build_plan(cache_path, out_path, grids, seed)        # once per dataset: results/{dataset}/stress_plan.h5
    test = load_test_split(cache_path)                          # once per evaluation job
    for stressor, severity, (arrays, presence) in iter_severities(out_path, test):
        ...  # RIDER-MoE: h_m <- MASK_m where ~presence; baselines: zero_absent(arrays, presence)

One concept per file: ``inputs`` (the test split), ``noise``, ``missing``, ``conflict`` (each stressor's draws and
its application), ``plan`` (building, storing and applying the plan).
"""

from rider.stress.inputs import MODALITIES, load_feature_std, load_test_split
from rider.stress.missing import expected_drop_rate, zero_absent
from rider.stress.plan import (
    DEFAULT_GRIDS,
    SCHEMA_VERSION,
    STRESSORS,
    StressedInputs,
    StressPlan,
    apply_plan,
    build_plan,
    check_plan_cache,
    corrupted_modalities,
    iter_severities,
    read_plan,
)

__all__ = [
    "DEFAULT_GRIDS",
    "MODALITIES",
    "SCHEMA_VERSION",
    "STRESSORS",
    "StressPlan",
    "StressedInputs",
    "apply_plan",
    "build_plan",
    "check_plan_cache",
    "corrupted_modalities",
    "expected_drop_rate",
    "iter_severities",
    "load_feature_std",
    "load_test_split",
    "read_plan",
    "zero_absent",
]
