"""RIDER-MoE, the paper's model (§3, App. B), one concept per module: ``config`` (hyper-parameters, App. C.5),
``encoders`` (g_m), ``fusion`` (f_fuse), ``experts`` (U_T, U_A, U_V, R, S), ``router`` (Eqs. 21-39), ``network``
(the forward pass and the masked views, Algorithm 1), ``losses`` (Eqs. 2, 23, 43-52), ``rider_moe`` (the kind the
pipeline trains), ``text_only`` (g_T and a regression head, a kind of its own for text-only data).

This file imports nothing, so that a module of the package brings only what it imports into a stage's sources.
"""
