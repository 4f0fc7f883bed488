# rider: RIDER-MoE, from raw CMU-MOSI/MOSEI (or the embedded synthetic dataset) to tables and figures.
# Stages and paths: ../shared/DESIGN.md §1 and README.md. Each stage lives in workflow/rules/<stage>.smk.

from snakemake.utils import min_version

min_version("9.0")


# Snakemake's own YAML loader keeps the last of two equal keys and reports a syntax error without a line: read
# the config files with rider's strict loader first (a command-line --configfile is loaded before this line, so a
# syntax error there gets Snakemake's message; a duplicate key there is still refused here).
from rider.config import check_config_files

check_config_files([*workflow.overwrite_configfiles, "config.yaml"])


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.data.input,
        rules.evaluations.input,
        rules.report.input,
