"""What the report holds: the names and titles of its tables and figures, and the axes they share.

This module imports nothing (no numpy, pandas or matplotlib), so the workflow reads the output names from it:
report.smk declares ``results/tables/<name>.<format>`` for each table and ``results/figures/<name>.<format>``
for each figure named here, and the writers in ``tables``/``figures`` write exactly those names.
"""

from __future__ import annotations

from typing import Final

PAPER_DATASETS: Final = ("mosi", "mosei")  # the datasets of the paper's tables
PAPER_TITLES: Final = {"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI"}
STRESSORS: Final = ("noise", "missing", "conflict")
STRESSOR_TITLES: Final = {"noise": "Noise (ρ)", "missing": "Missingness (m)", "conflict": "Conflict (c)"}
DIAGNOSTICS: Final = ("delta_u_avg", "var_r", "off_s", "corr_syn_residual")  # App. C.4, Eqs. 55-58
DIAGNOSTIC_TITLES: Final = {"delta_u_avg": "ΔU_avg ↓", "var_r": "Var(R) ↓", "off_s": "Off(S) ↓",
                            "corr_syn_residual": "corr(π_S·y_S, δ) ↑"}
LATENTS: Final = ("u_T", "u_A", "u_V", "r", "s")  # the synthetic ground truth (DESIGN §2)
INTENDED_LATENT: Final = {"U_T": "u_T", "U_A": "u_A", "U_V": "u_V", "R": "r", "S": "s"}  # expert -> its latent


# name -> title; report.smk declares results/tables/<name>.{csv,md,tex,html} for each.
TABLES: Final = {
    "table1_clean": "Table 1: clean test metrics of every model",
    "table2_robustness": "Table 2: robustness, nAUC of Acc-2 and Corr under Noise / Missing / Conflict",
    "table3_ablations": "Table 3: ablations, clean metrics and nAUC",
    "table4_prior_sweep": "Table 4: λ_p sweep and the consensus term",
    "table5_dir_sweep": "Table 5: DIR weight sweep and component controls",
    "table_remedies": "Remedies for a router that does not react: clean metrics and nAUC",
    "table6_parameters": "Table 6: parameters and parameter memory",
    "table_chain": "Signal chain: how the router's signals separate corrupted inputs and track quality",
    "table_tuning": "Tuning: every kind's trials of the declared search and the choice, by validation MAE",
}
OVERHEAD_TABLE: Final = "overhead"  # App. D, measured on this run by its own rule
OVERHEAD_TITLE: Final = "Appendix D: training overhead of the four views, measured on this run"
TABLE_FORMATS: Final = ("csv", "md", "tex", "html")

# name -> title; report.smk declares results/figures/<name>.{png,pdf} for each.
FIGURES: Final = {
    "figure3_severity": "Figure 3: Acc-2 and Corr against severity",
    "figure4_routing": "Figure 4: mean routing weights against severity",
    "figure5_dir": "Figure 5: DIR diagnostics across the ablation variants",
    "figure_latents": "Expert outputs against the synthetic ground-truth latents",
    "figure_chain": "The router's signal chain against severity: H_m, r_m, cons_score, Prior^exp, π",
}
FIGURE_FORMATS: Final = ("png", "pdf")
