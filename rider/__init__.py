"""rider: RIDER-MoE (reliability-aware expert routing) and the data, training and evaluation stages around it.

The package is the library; the Snakemake workflow under ``workflow/`` only wires files to it.
Nothing in here imports Snakemake, and no path is hard-coded: every path comes from the caller.
"""

__version__ = "0.1.0"
