"""The baselines of the paper's Tables 1-2, one module per model kind, each named after its kind and declaring
``KIND``: ``tfn``, ``lmf``, ``mult``, ``misa``, ``self_mm``, ``mmim``, ``dmd``, ``emoe``, ``t_hne``, ``mma``. Each
follows its paper and its authors' code; its docstring lists where ours differs and why.

This file imports nothing, so that a baseline's sources are the interface, its own module and what it imports.
"""
