"""The report: the paper's Tables 1-6, Figures 3-5 and the Appendix D overhead, with mean ± std over seeds.

One concept per module: ``layout`` (names of the tables and figures; imports nothing heavy, so the workflow reads
it), ``spec`` (which evaluations a report covers, from the workflow's config), ``paper`` (the published numbers
under resources/paper/),
``aggregate`` (eval.json -> tidy frames, mean ± std over seeds, the paired test), ``tables`` (the tables and their
CSV / Markdown / LaTeX / HTML writers), ``figures``, ``overhead`` (App. D step times), ``build`` (the three jobs
``rider report tables|figures|overhead`` runs).
"""

from rider.report.layout import FIGURE_FORMATS, FIGURES, OVERHEAD_TABLE, TABLE_FORMATS, TABLES

__all__ = ["FIGURES", "FIGURE_FORMATS", "OVERHEAD_TABLE", "TABLES", "TABLE_FORMATS"]
