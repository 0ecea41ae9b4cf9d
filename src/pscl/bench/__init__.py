"""`pscl bench`: the paper's protocol (:mod:`~pscl.bench.protocol`) over methods written in a small
spec language (:mod:`~pscl.bench.spec`), each trained through one interface
(:mod:`~pscl.bench.learners`), compared by paired statistics (:mod:`~pscl.bench.statistics`) in a
report and a figure (:mod:`~pscl.bench.tables`, :mod:`~pscl.bench.figure`); and the speed bench
(:mod:`~pscl.bench.speed`).
"""
from pscl.bench.protocol import rebuild_report, run_bench
from pscl.bench.tables import collect, report
from pscl.bench.spec import METHODS, folder_name, parse_method
from pscl.bench.statistics import paired_difference

__all__ = ["METHODS", "collect", "folder_name", "paired_difference", "parse_method", "rebuild_report", "report",
           "run_bench"]
